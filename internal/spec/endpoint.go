package spec

import (
	"strings"
)

// Auth modes (auth_mode).
const (
	AuthKey      = "key"
	AuthAMLToken = "aml_token"
	AuthAADToken = "aad_token"
)

// Endpoint is Azure's managedOnlineEndpoint / kubernetesOnlineEndpoint
// YAML.
type Endpoint struct {
	// Schema is the $schema URL; "" is fine. A kubernetesOnlineEndpoint
	// schema makes the endpoint a Kubernetes one.
	Schema string `json:"$schema,omitempty"`
	// Name is required: 3–32 characters, a letter first, then letters,
	// digits and '-'.
	Name string `json:"name"`
	// Description is free text; "" means none.
	Description string `json:"description,omitempty"`
	// Tags are free-form; nil means none.
	Tags map[string]string `json:"tags,omitempty"`
	// AuthMode is key, aml_token or aad_token (any case is accepted and
	// normalised, e.g. the Kubernetes sample's "Key"); "" means key.
	AuthMode string `json:"auth_mode,omitempty"`
	// Compute is an Azure Kubernetes compute target (azureml:<name>);
	// "" means managed. Ignored by plumbline beyond marking the endpoint
	// as a Kubernetes one.
	Compute string `json:"compute,omitempty" spec:"ignored"`
	// Identity is the Azure identity; ignored by plumbline. nil means
	// system-assigned in Azure.
	Identity *Identity `json:"identity,omitempty" spec:"ignored"`
	// Traffic maps deployment names (lower-cased) to a percentage; values
	// are 0–100 and total 0 or 100. nil means no live traffic.
	Traffic map[string]int `json:"traffic,omitempty" spec:"lowerkeys"`
	// MirrorTraffic maps at most one deployment (lower-cased) to the
	// percentage of live requests copied to it, 0–50. nil means none.
	MirrorTraffic map[string]int `json:"mirror_traffic,omitempty" spec:"lowerkeys"`
	// PublicNetworkAccess is enabled or disabled; ignored by plumbline.
	// "" means enabled.
	PublicNetworkAccess string `json:"public_network_access,omitempty" spec:"ignored"`
	// Properties are free-form; nil means none.
	Properties map[string]string `json:"properties,omitempty"`
	// Plumbline is plumbline's extension block, reserved; nil means none.
	Plumbline *EndpointExtension `json:"plumbline,omitempty"`
}

// EndpointExtension is the endpoint's plumbline: block, plumbline's own
// settings next to Azure's.
type EndpointExtension struct {
	// Compare says how the shadow comparison reads the answers of a live
	// deployment and of the mirror target; nil means the whole answer,
	// numbers within 1e-9.
	Compare *CompareSettings `json:"compare,omitempty"`
}

// Identity is an endpoint's Azure identity (accepted and ignored).
type Identity struct {
	// Type is system_assigned, user_assigned or none; "" means
	// system_assigned.
	Type string `json:"type,omitempty"`
	// UserAssignedIdentities lists at most one identity, required when
	// Type is user_assigned.
	UserAssignedIdentities []UserAssignedIdentity `json:"user_assigned_identities,omitempty"`
}

// UserAssignedIdentity is one user-assigned identity.
type UserAssignedIdentity struct {
	// ResourceID is the identity's ARM id; required.
	ResourceID string `json:"resource_id"`
	// ClientID is optional; "" means not given.
	ClientID string `json:"client_id,omitempty"`
	// ObjectID is optional; "" means not given.
	ObjectID string `json:"object_id,omitempty"`
}

func (*Endpoint) readOnlyFields() []string {
	return []string{"provisioning_state", "scoring_uri", "openapi_uri", "swagger_uri", "kind", "id", "location", "creation_context"}
}

func (*Identity) readOnlyFields() []string {
	return []string{"principal_id", "tenant_id"}
}

// IsKubernetes reports whether the endpoint is a Kubernetes one: its
// $schema is kubernetesOnlineEndpoint or it names a compute.
func (e *Endpoint) IsKubernetes() bool {
	return schemaName(e.Schema) == "kubernetesonlineendpoint" || e.Compute != ""
}

// Validate checks the endpoint against Azure's rules.
func (e *Endpoint) Validate() error {
	var p problems
	if e.Name == "" {
		p.add("name", "missing; an endpoint needs a name (3-32 characters: letters, digits and '-', starting with a letter)")
	} else if err := ValidateName("endpoint", e.Name); err != nil {
		p.add("name", "%v", err)
	}
	if e.Schema != "" {
		if k := schemaKind(e.Schema); k != KindEndpoint {
			p.add("$schema", "%s is not an online endpoint schema (managedOnlineEndpoint or kubernetesOnlineEndpoint)", quote(e.Schema))
		}
	}
	if e.AuthMode != "" {
		if msg := oneOf(e.AuthMode, AuthKey, AuthAMLToken, AuthAADToken); msg != "" {
			p.add("auth_mode", "%s", msg)
		} else if snakeCase(e.AuthMode) == AuthAADToken && e.IsKubernetes() {
			p.add("auth_mode", "aad_token works only for managed endpoints; a Kubernetes endpoint takes key or aml_token")
		}
	}
	if id := e.Identity; id != nil {
		if id.Type != "" {
			if msg := oneOf(id.Type, "system_assigned", "user_assigned", "none"); msg != "" {
				p.add("identity.type", "%s", msg)
			}
		}
		switch {
		case snakeCase(id.Type) == "user_assigned" && len(id.UserAssignedIdentities) == 0:
			p.add("identity.user_assigned_identities", "missing; type user_assigned needs one identity (resource_id)")
		case len(id.UserAssignedIdentities) > 1:
			p.add("identity.user_assigned_identities", "Only 1 user assigned identity is currently supported")
		}
		for i, u := range id.UserAssignedIdentities {
			if u.ResourceID == "" {
				p.add(joinPath("identity.user_assigned_identities", itoa(i))+".resource_id", "missing; set the identity's ARM resource id")
			}
		}
	}
	if e.PublicNetworkAccess != "" {
		if msg := oneOf(lower(e.PublicNetworkAccess), "enabled", "disabled"); msg != "" {
			p.add("public_network_access", "%s", msg)
		}
	}
	p.nest("", ValidateTraffic(e.Traffic, e.MirrorTraffic))
	if x := e.Plumbline; x != nil && x.Compare != nil {
		validateCompare(&p, x.Compare)
	}
	return p.err()
}

func (e *Endpoint) normalize() {
	if e.AuthMode != "" {
		e.AuthMode = snakeCase(e.AuthMode)
	}
	if e.Identity != nil && e.Identity.Type != "" {
		e.Identity.Type = snakeCase(e.Identity.Type)
	}
	if e.PublicNetworkAccess != "" {
		e.PublicNetworkAccess = lower(e.PublicNetworkAccess)
	}
	e.Traffic = lowerKeys(e.Traffic)
	e.MirrorTraffic = lowerKeys(e.MirrorTraffic)
}

func lowerKeys(m map[string]int) map[string]int {
	if m == nil {
		return nil
	}
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

// Defaulted returns a copy with defaults applied and values normalised:
// auth_mode key.
func (e *Endpoint) Defaulted() *Endpoint {
	c := clone(e)
	c.normalize()
	if c.AuthMode == "" {
		c.AuthMode = AuthKey
	}
	return c
}
