package spec

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestUpdates(t *testing.T) {
	uai := `name: my-endpoint
auth_mode: key
tags:
  team: ml
identity:
  type: user_assigned
  user_assigned_identities:
    - resource_id: id-a
    - resource_id: id-b
`
	// The tree is checked directly: the endpoint schema allows one
	// identity, and these tests are about the list operations.
	set := func(args ...string) Update { return Update{Op: UpdateSet, Args: args} }
	tests := []struct {
		name  string
		ups   []Update
		check func(t *testing.T, e map[string]any)
	}{
		{
			name: "several sets in one argument, JSON values",
			ups:  []Update{set("description=a b", `tags={"x": "1", "y": "2"}`)},
			check: func(t *testing.T, e map[string]any) {
				if e["description"] != "a b" {
					t.Errorf("description: got %q", e["description"])
				}
				if diff := cmp.Diff(map[string]any{"x": "1", "y": "2"}, e["tags"]); diff != "" {
					t.Errorf("tags (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "bracket index and filter",
			ups:  []Update{set("identity.user_assigned_identities[1].client_id=cb", "identity.user_assigned_identities[resource_id=id-a].client_id=ca")},
			check: func(t *testing.T, e map[string]any) {
				want := []any{map[string]any{"resource_id": "id-a", "client_id": "ca"}, map[string]any{"resource_id": "id-b", "client_id": "cb"}}
				if diff := cmp.Diff(want, uais(e)); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "force-string keeps a number a string",
			ups:  []Update{{Op: UpdateSet, Args: []string{"tags.build=0012"}, ForceString: true}},
			check: func(t *testing.T, e map[string]any) {
				if got := e["tags"].(map[string]any)["build"]; got != "0012" {
					t.Errorf("tags.build: got %q, want 0012", got)
				}
			},
		},
		{
			name: "add key=value pairs as one element, then a JSON element",
			ups:  []Update{{Op: UpdateAdd, Args: []string{"identity.user_assigned_identities", "resource_id=id-c", "client_id=cc", `{"resource_id": "id-d"}`}}},
			check: func(t *testing.T, e map[string]any) {
				want := []any{map[string]any{"resource_id": "id-a"}, map[string]any{"resource_id": "id-b"}, map[string]any{"resource_id": "id-c", "client_id": "cc"}, map[string]any{"resource_id": "id-d"}}
				if diff := cmp.Diff(want, uais(e)); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "remove an index, a bracketed element and a field, in order",
			ups: []Update{
				{Op: UpdateRemove, Args: []string{"identity.user_assigned_identities", "0"}},
				{Op: UpdateAdd, Args: []string{"identity.user_assigned_identities", "resource_id=id-e"}},
				{Op: UpdateRemove, Args: []string{"identity.user_assigned_identities[0]"}},
				{Op: UpdateRemove, Args: []string{"tags"}},
			},
			check: func(t *testing.T, e map[string]any) {
				want := []any{map[string]any{"resource_id": "id-e"}}
				if diff := cmp.Diff(want, uais(e)); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
				if _, ok := e["tags"]; ok {
					t.Errorf("tags: got %v, want none", e["tags"])
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := parseTree("e.yml", []byte(uai))
			if err != nil {
				t.Fatal(err)
			}
			if err := tr.applyUpdates(tt.ups); err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := tr.root.Decode(&got); err != nil {
				t.Fatal(err)
			}
			tt.check(t, got)
		})
	}
}

func uais(e map[string]any) any {
	return e["identity"].(map[string]any)["user_assigned_identities"]
}

func TestUpdateErrors(t *testing.T) {
	tests := []struct {
		name string
		ups  []Update
		want string
	}{
		{"add to a mapping", []Update{{Op: UpdateAdd, Args: []string{"tags", "a=b"}}},
			"--add tags a=b: tags: tags is a mapping, not a list; set a field of it with --set tags.KEY=VALUE"},
		{"remove a missing field", []Update{{Op: UpdateRemove, Args: []string{"description"}}},
			"--remove description: description: the document has no field description"},
		{"remove index out of range", []Update{{Op: UpdateRemove, Args: []string{"identity.user_assigned_identities", "5"}}},
			`--remove identity.user_assigned_identities 5: identity.user_assigned_identities: identity.user_assigned_identities is a list of 1 items; "5" is not an index from 0 to 0`},
		{"filter finds nothing", []Update{{Op: UpdateSet, Args: []string{"identity.user_assigned_identities[resource_id=zz].client_id=x"}}},
			"--set identity.user_assigned_identities[resource_id=zz].client_id=x: identity.user_assigned_identities[resource_id=zz].client_id: identity.user_assigned_identities has no element with resource_id=zz"},
		{"unknown key from an add", []Update{{Op: UpdateAdd, Args: []string{"identity.user_assigned_identities", "resource=x"}}},
			"--add identity.user_assigned_identities resource=x: identity.user_assigned_identities.1.resource: unknown field; did you mean resource_id?"},
	}
	src := "name: my-endpoint\ntags:\n  team: ml\nidentity:\n  type: user_assigned\n  user_assigned_identities:\n    - resource_id: x\n"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := errText(t, "e.yml", src, ParseOptions{Updates: tt.ups, Expect: KindEndpoint})
			if got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}
