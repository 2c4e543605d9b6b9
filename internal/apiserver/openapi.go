package apiserver

import (
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/plumbline/plumbline/api"
)

// routeDoc describes a route for the OpenAPI document.
type routeDoc struct {
	summary  string
	request  any // a value of the request body type, a string content type, or nil
	response any // a value of the 2xx response type, a string content type, or nil
	status   int
}

// docs describes every route of table(); TestOpenAPICoversRoutes keeps the
// two in step.
var docs = map[string]routeDoc{
	"GET /server":                                                 {"Describe the server", nil, api.ServerInfo{}, 200},
	"POST /artifacts":                                             {"Upload a tar or tar.gz stream as a content-addressed artifact", "application/x-tar", api.Artifact{}, 201},
	"HEAD /artifacts/{digest}":                                    {"Whether the artifact exists", nil, nil, 200},
	"GET /artifacts/{digest}":                                     {"Download the artifact as a tar stream", nil, "application/x-tar", 200},
	"GET /artifacts/{digest}/manifest":                            {"List the artifact's files", nil, []api.ManifestEntry{}, 200},
	"POST /models":                                                {"Register a model version (201 created, 200 identical one existed, 409 different content)", api.ModelCreate{}, api.Model{}, 201},
	"GET /models":                                                 {"List model versions", nil, []api.Model{}, 200},
	"GET /models/{name}/versions/{version}":                       {"Show a model version (version @latest: newest not archived)", nil, api.Model{}, 200},
	"PATCH /models/{name}/versions/{version}":                     {"Change a model version's description, tags and stage (501 when the store cannot)", api.ModelUpdate{}, api.Model{}, 200},
	"POST /models/{name}/versions/{version}/archive":              {"Archive a model version", nil, nil, 204},
	"POST /models/{name}/versions/{version}/restore":              {"Restore a model version", nil, nil, 204},
	"POST /models/{name}/archive":                                 {"Archive every version of a model", nil, nil, 204},
	"POST /models/{name}/restore":                                 {"Restore every version of a model", nil, nil, 204},
	"GET /images":                                                 {"Whether the server's container engine has an image (?ref=name:tag; 404 if not, 409 without a container driver)", nil, api.Image{}, 200},
	"POST /images/build":                                          {"Build an uploaded build context into tagged images; streams api.BuildMessage lines (NDJSON), the last with done", api.ImageBuild{}, api.BuildMessage{}, 200},
	"POST /environments":                                          {"Register an environment version from its document (201 created, 200 identical one existed, 409 different content)", nil, api.Environment{}, 201},
	"GET /environments":                                           {"List environment versions", nil, []api.Environment{}, 200},
	"GET /environments/{name}/versions/{version}":                 {"Show an environment version (version @latest: newest not archived)", nil, api.Environment{}, 200},
	"POST /environments/{name}/versions/{version}/archive":        {"Archive an environment version", nil, nil, 204},
	"POST /environments/{name}/versions/{version}/restore":        {"Restore an environment version", nil, nil, 204},
	"POST /environments/{name}/archive":                           {"Archive every version of an environment", nil, nil, 204},
	"POST /environments/{name}/restore":                           {"Restore every version of an environment", nil, nil, 204},
	"POST /endpoints":                                             {"Create an endpoint from its YAML or JSON document (409 if it exists)", "application/yaml", api.Endpoint{}, 201},
	"GET /endpoints":                                              {"List endpoints", nil, []api.Endpoint{}, 200},
	"GET /endpoints/{endpoint}":                                   {"Show an endpoint", nil, api.Endpoint{}, 200},
	"PUT /endpoints/{endpoint}":                                   {"Replace an endpoint's document (traffic, mirror, auth mode, description, tags)", "application/yaml", api.Endpoint{}, 200},
	"GET /endpoints/{endpoint}/document":                          {"The endpoint document with its live traffic, to edit and PUT back", nil, map[string]any{}, 200},
	"DELETE /endpoints/{endpoint}":                                {"Delete an endpoint and its deployments (asynchronous)", nil, nil, 202},
	"POST /endpoints/{endpoint}/listkeys":                         {"The endpoint's keys (auth_mode key)", nil, api.Keys{}, 200},
	"POST /endpoints/{endpoint}/regenerateKeys":                   {"Regenerate the primary or secondary key (auth_mode aml_token: revoke every token issued so far)", api.RegenerateKeys{}, api.Keys{}, 200},
	"POST /endpoints/{endpoint}/token":                            {"Issue an aml_token (auth_mode aml_token)", nil, api.Token{}, 200},
	"POST /endpoints/{endpoint}/revokeTokens":                     {"Revoke every aml_token issued for the endpoint so far (extension)", nil, api.TokensRevoked{}, 200},
	"POST /endpoints/{endpoint}/deployments":                      {"Create a deployment from its document, local paths replaced by sha256: digests (409 if it exists)", "application/yaml", api.Deployment{}, 201},
	"GET /endpoints/{endpoint}/deployments":                       {"List an endpoint's deployments", nil, []api.Deployment{}, 200},
	"GET /endpoints/{endpoint}/deployments/{deployment}":          {"Show a deployment with its instances", nil, api.Deployment{}, 200},
	"PUT /endpoints/{endpoint}/deployments/{deployment}":          {"Update a deployment (409 while an operation is in progress)", "application/yaml", api.Deployment{}, 200},
	"DELETE /endpoints/{endpoint}/deployments/{deployment}":       {"Delete a deployment with no traffic (asynchronous)", nil, nil, 202},
	"GET /endpoints/{endpoint}/deployments/{deployment}/document": {"The deployment document as given (references pinned, no defaults), to edit and PUT back", nil, map[string]any{}, 200},
	"GET /endpoints/{endpoint}/deployments/{deployment}/logs":     {"Console logs (query: lines, instance, follow; container: inference-server, the default, storage-initializer for the model and code fetch events, or image-build)", nil, "text/plain", 200},
	"GET /endpoints/{endpoint}/deployments/{deployment}/events":   {"A deployment's lifecycle events", nil, []api.Event{}, 200},
	"GET /events":                                                 {"Lifecycle events (query: endpoint, deployment, after, limit)", nil, []api.Event{}, 200},
	"POST /fsck":                                                  {"Check (repair: and repair) blobs, artifacts and the cache against the store; newline-delimited JSON: progress lines, then the report", api.FsckRequest{}, "application/x-ndjson", 200},
	"POST /gc":                                                    {"Remove (dry_run: list) blobs and cache trees nothing references, older than min_age", api.GCRequest{}, api.GCReport{}, 200},
	"PUT /blobs/{digest}":                                         {"Store bytes that hash to the digest, repairing a corrupt or missing blob (201 stored, 200 already right)", "application/octet-stream", nil, 201},
	"POST /signin-links":                                          {"A one-time studio sign-in link (valid 10 minutes; POST /signin with its code, without a token, returns the admin token)", api.SigninLinkRequest{}, api.SigninLink{}, 201},
	"GET /endpoints/{endpoint}/snippets":                          {"Ready-to-paste shell, curl and R httr2 calls of the endpoint (query: request_file, an absolute path)", nil, api.Snippets{}, 200},
}

var pathParam = regexp.MustCompile(`\{([a-z]+)\}`)

// openAPI serves the OpenAPI 3.0 document, built from the route table so it
// cannot drift from what is served.
func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.openAPIDoc())
}

func (s *Server) openAPIDoc() map[string]any {
	schemas := map[string]any{}
	paths := map[string]map[string]any{}
	for _, rt := range s.table() {
		d := docs[rt.method+" "+rt.path]
		op := map[string]any{
			"summary":     d.summary,
			"operationId": operationID(rt.method, rt.path),
			"security":    []any{map[string]any{"bearer": []any{}}},
		}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(rt.path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if d.request != nil {
			op["requestBody"] = map[string]any{"required": true, "content": content(d.request, schemas)}
		}
		resp := map[string]any{"description": http.StatusText(d.status)}
		if d.response != nil {
			resp["content"] = content(d.response, schemas)
		}
		op["responses"] = map[string]any{
			itoa(d.status): resp,
			"default":      map[string]any{"description": "error", "content": map[string]any{"application/json": map[string]any{"schema": ref(api.ErrorResponse{}, schemas)}}},
		}
		p := prefix + rt.path
		if paths[p] == nil {
			paths[p] = map[string]any{}
		}
		paths[p][strings.ToLower(rt.method)] = op
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{
			"title":       "plumbline control plane",
			"version":     api.Version,
			"description": "Models, online endpoints and deployments, as Azure ML's online endpoints. Every call needs the admin token as a bearer token.",
		},
		"paths": paths,
		"components": map[string]any{
			"schemas":         schemas,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
		},
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func operationID(method, path string) string {
	parts := []string{strings.ToLower(method)}
	for _, seg := range strings.Split(strings.Trim(path, "/"), "/") {
		seg = strings.Trim(seg, "{}")
		if seg != "" {
			parts = append(parts, strings.ToUpper(seg[:1])+seg[1:])
		}
	}
	return strings.Join(parts, "")
}

func content(v any, schemas map[string]any) map[string]any {
	if ct, ok := v.(string); ok {
		return map[string]any{ct: map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}}
	}
	return map[string]any{"application/json": map[string]any{"schema": ref(v, schemas)}}
}

// ref returns a schema for v's type, registering named struct types in
// schemas.
func ref(v any, schemas map[string]any) map[string]any { return schemaOf(reflect.TypeOf(v), schemas) }

var timeType = reflect.TypeOf(time.Time{})

func schemaOf(t reflect.Type, schemas map[string]any) map[string]any {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t.Kind() == reflect.Struct:
		name := t.Name()
		if _, done := schemas[name]; !done {
			schemas[name] = map[string]any{} // break cycles
			props := map[string]any{}
			for i := 0; i < t.NumField(); i++ {
				f := t.Field(i)
				tag := strings.Split(f.Tag.Get("json"), ",")[0]
				if tag == "-" || !f.IsExported() {
					continue
				}
				if tag == "" {
					tag = f.Name
				}
				props[tag] = schemaOf(f.Type, schemas)
			}
			obj := map[string]any{"type": "object", "properties": props}
			if name == "Deployment" {
				obj["additionalProperties"] = true
				obj["description"] = "The deployment document's fields (Azure's managedOnlineDeployment) flattened with these status fields."
			}
			schemas[name] = obj
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	case t.Kind() == reflect.Slice:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem(), schemas)}
	case t.Kind() == reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem(), schemas)}
	case t.Kind() == reflect.String:
		return map[string]any{"type": "string"}
	case t.Kind() == reflect.Bool:
		return map[string]any{"type": "boolean"}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return map[string]any{"type": "integer"}
	}
	return map[string]any{}
}
