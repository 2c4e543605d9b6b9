package redact

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

var key = []byte("0123456789abcdef0123456789abcdef")

func TestApply(t *testing.T) {
	tests := []struct {
		name         string
		redact, hash []string
		in           string
		want         string
		n            int
	}{
		{"no rules keeps the body", nil, nil, `{"b":1, "a":2}`, `{"b":1, "a":2}`, 0},
		{"member removed", []string{"$.ssn"}, nil, `{"ssn":"123-45-6789","age":41}`, `{"age":41}`, 1},
		{"descendants in records", []string{"$..ssn"}, nil,
			`[{"ssn":"123-45-6789","age":41},{"ssn":"987-65-4321","age":7}]`, `[{"age":41},{"age":7}]`, 2},
		{"a column of a column-oriented frame", []string{"$.ssn"}, nil,
			`{"ssn":["123-45-6789","987-65-4321"],"age":[41,7]}`, `{"age":[41,7]}`, 1},
		{"array elements become null", []string{"$.data[*][0]"}, nil, `{"data":[[1,2],[3,4]]}`, `{"data":[[null,2],[null,4]]}`, 2},
		{"nothing selected", []string{"$.missing"}, nil, `{"a":1}`, `{"a":1}`, 0},
		{"numbers kept as written", []string{"$.x"}, nil, `{"x":1,"big":12345678901234567890,"f":0.1000}`, `{"big":12345678901234567890,"f":0.1000}`, 1},
		{"whole body", []string{"$"}, nil, `{"a":1}`, `null`, 1},
		{"hash", nil, []string{"$.customer"}, `{"customer":"c-17","x":1}`,
			`{"customer":"hmac-sha256:` + hashOf(`"c-17"`) + `","x":1}`, 1},
		{"redact wins over hash", []string{"$.customer"}, []string{"$.customer"}, `{"customer":"c-17"}`, `{}`, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Compile(tt.redact, tt.hash, key)
			if err != nil {
				t.Fatal(err)
			}
			got, n, err := r.Apply([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want || n != tt.n {
				t.Errorf("got %s (%d), want %s (%d)", got, n, tt.want, tt.n)
			}
		})
	}
}

func hashOf(s string) string {
	r, _ := Compile(nil, []string{"$"}, key)
	out, _, _ := r.Apply([]byte(s))
	return strings.TrimSuffix(strings.TrimPrefix(string(out), `"`+HashPrefix), `"`)
}

func TestHashIsKeyed(t *testing.T) {
	a, _ := Compile(nil, []string{"$.c"}, key)
	b, _ := Compile(nil, []string{"$.c"}, bytes.Repeat([]byte("k"), 32))
	x, _, _ := a.Apply([]byte(`{"c":"c-17"}`))
	y, _, _ := b.Apply([]byte(`{"c":"c-17"}`))
	if bytes.Equal(x, y) {
		t.Errorf("two keys gave the same hash %s", x)
	}
	if bytes.Contains(x, []byte("c-17")) {
		t.Errorf("the hashed value %s shows the original", x)
	}
}

func TestNotJSON(t *testing.T) {
	r, _ := Compile([]string{"$.ssn"}, nil, nil)
	for _, in := range []string{`ssn=123-45-6789`, `{"ssn":1} {"ssn":2}`, ``} {
		if _, _, err := r.Apply([]byte(in)); !errors.Is(err, ErrNotJSON) {
			t.Errorf("%q: got %v, want ErrNotJSON", in, err)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	if _, err := Compile([]string{"ssn"}, nil, nil); err == nil {
		t.Error("a bad expression compiled")
	}
	if _, err := Compile(nil, []string{"$.x"}, []byte("short")); err == nil {
		t.Error("hash rules compiled with a short key")
	}
	if r, _ := Compile(nil, nil, nil); !r.Empty() {
		t.Error("no rules is not Empty")
	}
}

func FuzzApply(f *testing.F) {
	f.Add([]byte(`{"ssn":"123-45-6789","rows":[{"ssn":"1"}]}`))
	r, _ := Compile([]string{"$..ssn"}, []string{"$..id"}, key)
	f.Fuzz(func(t *testing.T, in []byte) {
		out, _, err := r.Apply(in)
		if err != nil {
			return
		}
		// Numbers keep their text (Apply decodes with UseNumber), so a
		// number too large for a float64 is still valid JSON: read it the
		// same way.
		var doc any
		dec := json.NewDecoder(bytes.NewReader(out))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil || dec.More() {
			t.Fatalf("%s: the output %s is not JSON: %v", in, out, err)
		}
		if hasKey(doc, "ssn") {
			t.Fatalf("%s: the redacted member is still in %s", in, out)
		}
	})
}

func hasKey(v any, k string) bool {
	switch x := v.(type) {
	case map[string]any:
		if _, ok := x[k]; ok {
			return true
		}
		for _, e := range x {
			if hasKey(e, k) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if hasKey(e, k) {
				return true
			}
		}
	}
	return false
}
