package spec

import (
	"errors"
	"strings"
	"testing"
)

// errText parses src and returns the error's text ("" when it parses and
// validates).
func errText(t *testing.T, file, src string, opts ParseOptions) string {
	t.Helper()
	_, err := Parse(file, []byte(src), opts)
	if err == nil {
		return ""
	}
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse(%s) error %T %v; want spec.Errors", file, err, err)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("errors.Is(err, ErrInvalid) = false for %v", err)
	}
	return err.Error()
}

// mustParse parses src and fails the test on any error.
func mustParse(t *testing.T, file, src string, opts ParseOptions) *Document {
	t.Helper()
	doc, err := Parse(file, []byte(src), opts)
	if err != nil {
		t.Fatalf("Parse(%s): %v", file, err)
	}
	return doc
}

func lines(ss ...string) string { return strings.Join(ss, "\n") }

func intp(i int) *int { return &i }

// A managed deployment that validates, to derive cases from.
const okDeployment = `$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: my-endpoint
model: azureml:my-model:1
environment: azureml:my-env:1
instance_type: Standard_DS3_v2
instance_count: 1
`
