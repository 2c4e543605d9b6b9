package spec

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// ErrInvalid is matched by errors.Is for every Errors value: the input is a
// user mistake (bad YAML, unknown key, failed validation), not a system
// failure. An API server maps it to 400.
var ErrInvalid = errors.New("invalid specification")

// Problem is one thing wrong with a document.
type Problem struct {
	// File is the file name as given to Parse; "" when the problem is not
	// tied to a file (a value built in Go and validated).
	File string `json:"file,omitempty"`
	// Line and Column are 1-based; 0 means unknown.
	Line   int `json:"line,omitempty"`
	Column int `json:"column,omitempty"`
	// Set is the `--set` expression the problem comes from ("a.b=c"), or a
	// whole --add or --remove argument ("--add tags x=y"); "" when it comes
	// from the file.
	Set string `json:"set,omitempty"`
	// Field is the dotted field path (request_settings.request_timeout_ms,
	// traffic.blue, model.path); "" for problems with the whole document.
	Field string `json:"field,omitempty"`
	// Message says what is wrong and, where possible, how to fix it.
	Message string `json:"message"`
}

// Location is "file:line:col", "file:line", "file", "--set a.b=c", or "".
func (p Problem) Location() string {
	return location(p.File, p.Line, p.Column, p.Set)
}

func location(file string, line, col int, set string) string {
	if strings.HasPrefix(set, "--") {
		return set // "--add tags x=y": the whole argument
	}
	if set != "" {
		return "--set " + set
	}
	if line <= 0 {
		return file
	}
	if file == "" {
		if col > 0 {
			return fmt.Sprintf("line %d, column %d", line, col)
		}
		return fmt.Sprintf("line %d", line)
	}
	s := file + ":" + strconv.Itoa(line)
	if col > 0 {
		s += ":" + strconv.Itoa(col)
	}
	return s
}

// Error formats the problem on one line: "location: field: message", leaving
// out the parts that are empty.
func (p Problem) Error() string {
	parts := make([]string, 0, 3)
	if l := p.Location(); l != "" {
		parts = append(parts, l)
	}
	if p.Field != "" {
		parts = append(parts, p.Field)
	}
	parts = append(parts, p.Message)
	return oneLine(strings.Join(parts, ": "))
}

// oneLine escapes line breaks that user-supplied keys or values may carry,
// so that every problem and notice prints on exactly one line.
var oneLine = strings.NewReplacer("\n", `\n`, "\r", `\r`, "\u2028", `\u2028`, "\u2029", `\u2029`, "\u0085", `\u0085`).Replace

// Errors is the list of problems found in one document. It is returned as a
// plain error; errors.As(err, &errs) recovers the list and
// errors.Is(err, ErrInvalid) is true.
type Errors []Problem

// Error returns one line per problem.
func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, p := range e {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Is reports whether target is ErrInvalid.
func (e Errors) Is(target error) bool { return target == ErrInvalid }

// maxProblems caps a list so that a hostile or badly broken input does not
// produce megabytes of messages.
const maxProblems = 50

// sorted orders problems by position (file order), keeping problems without
// a line, and those from --set, after the others in their original order.
func (e Errors) sorted() Errors {
	out := append(Errors(nil), e...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		ka, kb := a.Line > 0 && a.Set == "", b.Line > 0 && b.Set == ""
		if ka != kb {
			return ka
		}
		if !ka {
			return false
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	if len(out) > maxProblems {
		n := len(out) - maxProblems
		out = append(out[:maxProblems], Problem{Message: fmt.Sprintf("… and %d more problems", n)})
	}
	return out
}

// problems collects validation problems.
type problems struct {
	list Errors
}

func (p *problems) add(field, format string, args ...any) {
	p.list = append(p.list, Problem{Field: field, Message: fmt.Sprintf(format, args...)})
}

// nest appends the problems of err (an Errors from a nested value), their
// fields prefixed with prefix.
func (p *problems) nest(prefix string, err error) {
	if err == nil {
		return
	}
	var errs Errors
	if !errors.As(err, &errs) {
		p.add(prefix, "%v", err)
		return
	}
	for _, e := range errs {
		e.Field = joinPath(prefix, e.Field)
		p.list = append(p.list, e)
	}
}

// err returns nil or the list as an error (never a typed nil).
func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	return p.list
}

// Notice is a remark about a document that is not an error: a field
// accepted but ignored, or a warning about something that will probably not
// work as the user expects.
type Notice struct {
	File string `json:"file,omitempty"`
	// Line is 1-based; 0 means unknown.
	Line int `json:"line,omitempty"`
	// Set is the --set expression the noticed value comes from, if any.
	Set string `json:"set,omitempty"`
	// Field is the dotted path of the field the notice is about.
	Field string `json:"field,omitempty"`
	// Message is a full sentence that names the field.
	Message string `json:"message"`
}

// String is "file:line: message" (or "--set a=b: message").
func (n Notice) String() string {
	if l := location(n.File, n.Line, 0, n.Set); l != "" {
		return oneLine(l + ": " + n.Message)
	}
	return oneLine(n.Message)
}

func sortNotices(ns []Notice) {
	sort.SliceStable(ns, func(i, j int) bool {
		a, b := ns[i], ns[j]
		ka, kb := a.Line > 0 && a.Set == "", b.Line > 0 && b.Set == ""
		if ka != kb {
			return ka
		}
		return ka && a.Line < b.Line
	})
}

func joinPath(prefix, field string) string {
	switch {
	case prefix == "":
		return field
	case field == "":
		return prefix
	}
	return prefix + "." + field
}
