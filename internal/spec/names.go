package spec

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Azure's name rule for endpoints and deployments (SDK
// validate_endpoint_or_deployment_name).
var endpointNameRE = regexp.MustCompile(`^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`)

const (
	// MinNameLength and MaxNameLength bound endpoint and deployment names.
	MinNameLength = 3
	MaxNameLength = 32
)

// assetNameRE is the rule for model and environment names: letters,
// digits, '-', '_' and '.', starting with a letter or digit, 1–255 long.
var assetNameRE = regexp.MustCompile(`^[a-zA-Z0-9][-a-zA-Z0-9_.]{0,254}$`)

// ValidateName checks an endpoint or deployment name (kind "endpoint" or
// "deployment") against Azure's rule and returns Azure's message:
// 3–32 characters, a letter first, then letters, digits and '-', not ending
// with '-'. Model and environment names (kind "model", "environment")
// follow the asset rule instead.
func ValidateName(kind, name string) error {
	switch kind {
	case "model", "environment":
		if !assetNameRE.MatchString(name) {
			article := "a model"
			if kind == "environment" {
				article = "an environment"
			}
			return fmt.Errorf("The name for %s must be 1 to 255 characters long, start with a letter or digit and only consist of letters, digits, '-', '_' and '.'.%s",
				article, placeholderHint(name))
		}
		return nil
	}
	article := "a " + kind
	if kind == "endpoint" {
		article = "an endpoint"
	}
	if n := len([]rune(name)); n < MinNameLength || n > MaxNameLength {
		return fmt.Errorf("The name for %s must be at least %d and at most %d characters long (inclusive of both limits).%s",
			article, MinNameLength, MaxNameLength, placeholderHint(name))
	}
	if !endpointNameRE.MatchString(name) {
		return fmt.Errorf("The name for %s must start with an upper- or lowercase letter and only consist of '-'s and alphanumeric characters.%s",
			article, placeholderHint(name))
	}
	return nil
}

func placeholderHint(name string) string {
	if strings.Contains(name, "{{") || strings.Contains(name, "<") {
		return " (It looks like a template placeholder that was not replaced.)"
	}
	return ""
}

var errBadVersion = errors.New("a version is letters, digits, '.', '_' and '-'")

var versionRE = regexp.MustCompile(`^[a-zA-Z0-9][-a-zA-Z0-9_.]{0,127}$`)

func validateVersion(v string) error {
	if !versionRE.MatchString(v) {
		return fmt.Errorf("version %s: %w, starting with a letter or digit", quote(v), errBadVersion)
	}
	return nil
}
