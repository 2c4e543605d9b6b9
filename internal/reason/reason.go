// Package reason is why a deployment failed or waits, as a typed value:
// one of Azure's codes, a message for the user, and whether retrying can
// help. The reconciler marks a deployment Failed with a terminal reason (a
// user mistake: retrying cannot fix it) and retries a transient one with
// backoff (an I/O error, a busy driver).
//
// It imports nothing from plumbline, so that every package that decides a
// reason (resolve's pre-start checks, drivers' callers, the reconciler) can
// return one.
package reason

import (
	"errors"
	"fmt"
	"strings"
)

// Code is a failure code as Azure's online deployments report it.
type Code string

const (
	// ResourceNotReady: the deployment's instances cannot start or become
	// ready (a missing R package, a crash at start, a readiness deadline).
	ResourceNotReady Code = "ResourceNotReady"
	// BadArgument: what the deployment names cannot be used (an unreadable
	// scoring script, a missing artifact).
	BadArgument Code = "BadArgument"
	// InvalidDeploymentSpec: the stored deployment cannot be read.
	InvalidDeploymentSpec Code = "InvalidDeploymentSpec"
	// DriverBusy: the driver could not act now (plumbline's code, transient).
	DriverBusy Code = "DriverBusy"
	// ArtifactUnavailable: an artifact could not be materialised now
	// (plumbline's code, transient).
	ArtifactUnavailable Code = "ArtifactUnavailable"
)

// Reason is a typed failure reason. It is an error, so a function can
// return it where it returns errors; Error is "Code: Message", the text a
// deployment's reason shows.
type Reason struct {
	Code    Code
	Message string
	// Transient says retrying may succeed; the zero value is terminal.
	Transient bool
	// Err is the underlying error, if any (for errors.Is/As).
	Err error
}

func (r *Reason) Error() string { return string(r.Code) + ": " + r.Message }

func (r *Reason) Unwrap() error { return r.Err }

// Terminal returns a terminal reason with a formatted message. A %w verb
// wraps its error as Err.
func Terminal(code Code, format string, args ...any) *Reason {
	err := fmt.Errorf(format, args...)
	return &Reason{Code: code, Message: err.Error(), Err: errors.Unwrap(err)}
}

// Transient returns a reason worth retrying.
func Transient(code Code, format string, args ...any) *Reason {
	r := Terminal(code, format, args...)
	r.Transient = true
	return r
}

// Parse is From for errors that carry their code as a text prefix
// ("ImageBuildFailure: image build failed at STEP 2/3…"), as errors from
// packages that do not import this one may: a CamelCase word and ": " start
// the text. Anything else gets code.
func Parse(err error, code Code) *Reason {
	var r *Reason
	if errors.As(err, &r) {
		return r
	}
	text := err.Error()
	if i := strings.Index(text, ": "); i > 0 && camel(text[:i]) {
		return &Reason{Code: Code(text[:i]), Message: text[i+2:], Err: err}
	}
	return &Reason{Code: code, Message: text, Err: err}
}

func camel(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// From returns err's Reason when it has one in its chain, else a terminal
// reason with code and err's text.
func From(err error, code Code) *Reason {
	var r *Reason
	if errors.As(err, &r) {
		return r
	}
	return &Reason{Code: code, Message: err.Error(), Err: err}
}
