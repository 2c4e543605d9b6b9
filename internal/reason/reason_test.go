package reason

import (
	"errors"
	"io/fs"
	"testing"
)

func TestReason(t *testing.T) {
	r := Terminal(ResourceNotReady, "R packages used by %s are not installed: %s", "plumber.R", "tibble")
	if got, want := r.Error(), "ResourceNotReady: R packages used by plumber.R are not installed: tibble"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if r.Transient {
		t.Error("Terminal(...).Transient = true")
	}
	tr := Transient(ArtifactUnavailable, "model %s: %w", "iris:1", fs.ErrNotExist)
	if !tr.Transient || !errors.Is(tr, fs.ErrNotExist) {
		t.Errorf("Transient(%%w) = %+v, want transient and wrapping fs.ErrNotExist", tr)
	}
	wrapped := errors.Join(errors.New("context"), tr)
	if got := From(wrapped, BadArgument); got != tr {
		t.Errorf("From(wrapped reason) = %+v, want the reason itself", got)
	}
	plain := errors.New("boom")
	if got := From(plain, BadArgument); got.Code != BadArgument || got.Message != "boom" || got.Transient || !errors.Is(got, plain) {
		t.Errorf("From(plain) = %+v, want a terminal BadArgument wrapping it", got)
	}
	prefixed := errors.New("ImageBuildFailure: image build failed at STEP 2/3")
	if got := Parse(prefixed, ResourceNotReady); got.Code != "ImageBuildFailure" || got.Error() != prefixed.Error() {
		t.Errorf("Parse(prefixed) = %+v, want code ImageBuildFailure and the same text", got)
	}
	if got := Parse(errors.New("no such file: x"), ResourceNotReady); got.Code != ResourceNotReady {
		t.Errorf("Parse(lower-case prefix) = %+v, want the default code", got)
	}
}
