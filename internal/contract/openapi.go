package contract

import "encoding/json"

// recordSchema is the JSON Schema of one record of the prototype:
// an object with one property per column (null allowed: NA), typed as the
// column is.
func (c *Contract) recordSchema() map[string]any {
	props := make(map[string]any, len(c.Columns))
	required := make([]string, 0, len(c.Columns))
	for _, col := range c.Columns {
		var s map[string]any
		switch col.Type {
		case TypeNumeric:
			s = map[string]any{"type": "number"}
		case TypeInteger:
			s = map[string]any{"type": "integer"}
		case TypeLogical:
			s = map[string]any{"type": "boolean"}
		case TypeFactor:
			s = map[string]any{"type": "string", "enum": col.Levels}
		case TypeDate:
			s = map[string]any{"type": "string", "format": "date"}
		case TypePOSIXct:
			s = map[string]any{"type": "string", "format": "date-time"}
		default:
			s = map[string]any{"type": "string"}
		}
		s["nullable"] = true
		props[col.Name] = s
		required = append(required, col.Name)
	}
	out := map[string]any{"type": "object", "properties": props, "required": required}
	if c.RejectsExtra() {
		out["additionalProperties"] = false
	}
	return out
}

// OpenAPI is an OpenAPI 3.0 document for an endpoint's deployment with this
// contract: POST /score takes the prototype's records (or, for a JSON Schema
// contract, that schema) and answers 200 with the model's predictions or
// 422 with the contract's problems.
func (c *Contract) OpenAPI(endpoint, deployment string) []byte {
	var body any
	if len(c.JSONSchema) > 0 {
		body = json.RawMessage(c.JSONSchema)
	} else {
		rec := c.recordSchema()
		body = map[string]any{
			"description": "rows as records (or MLflow's dataframe_split / dataframe_records, or an object of column arrays)",
			"type":        "array",
			"items":       rec,
		}
	}
	problem := map[string]any{"type": "object", "properties": map[string]any{
		"error": map[string]any{"type": "object", "properties": map[string]any{
			"code":    map[string]any{"type": "string"},
			"message": map[string]any{"type": "string"},
			"details": map[string]any{"type": "array", "items": map[string]any{"type": "object", "properties": map[string]any{
				"field": map[string]any{"type": "string"}, "message": map[string]any{"type": "string"},
			}}},
		}},
	}}
	doc := map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{
			"title":       endpoint,
			"version":     deployment,
			"description": "Scoring API of endpoint " + endpoint + " (deployment " + deployment + "); the request body is checked against the deployment's input contract. The contract: GET /prototype.",
		},
		"paths": map[string]any{
			"/score": map[string]any{"post": map[string]any{
				"summary":     "Score rows",
				"requestBody": map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": body}}},
				"responses": map[string]any{
					"200": map[string]any{"description": "the model's predictions"},
					"422": map[string]any{"description": "the request breaks the input contract; one entry per offending field",
						"content": map[string]any{"application/json": map[string]any{"schema": problem}}},
				},
				"security": []any{map[string]any{"bearer": []any{}}},
			}},
			"/prototype": map[string]any{"get": map[string]any{
				"summary":   "The input contract (vetiver's prototype form, or the JSON Schema)",
				"responses": map[string]any{"200": map[string]any{"description": "the contract"}},
				"security":  []any{map[string]any{"bearer": []any{}}},
			}},
		},
		"components": map[string]any{"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}}},
	}
	b, _ := json.Marshal(doc)
	return b
}
