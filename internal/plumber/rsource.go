package plumber

import (
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// tokKind classifies an R token. The lexer knows just enough R to find
// package references: comments and string contents never look like code.
type tokKind int

const (
	tokIdent  tokKind = iota // a name, backticked or not
	tokString                // a string literal, raw or not; val is its content
	tokOp                    // punctuation and operators: "(", "::", ",", "=", "$"…
	tokNumber
)

type token struct {
	kind tokKind
	val  string
}

// lexR splits R source into tokens, dropping whitespace and comments. It
// never fails: unterminated strings run to the end of the input.
func lexR(src []byte) []token {
	toks, _ := lexRPos(src)
	return toks
}

// lexRPos is lexR that also returns each token's byte offset in src.
func lexRPos(src []byte) ([]token, []int) {
	var toks []token
	var pos []int
	s := string(src)
	start := 0 // where the current iteration's token (at most one) begins
	for i := 0; i < len(s); {
		for len(pos) < len(toks) {
			pos = append(pos, start)
		}
		start = i
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case (c == 'r' || c == 'R') && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\''):
			val, n, ok := lexRawString(s[i:])
			if !ok {
				// r'… without a raw-string opener is an identifier r next to a string.
				toks = append(toks, token{tokIdent, string(c)})
				i++
				continue
			}
			toks = append(toks, token{tokString, val})
			i += n
		case c == '"' || c == '\'':
			val, n := lexString(s[i:])
			toks = append(toks, token{tokString, val})
			i += n
		case c == '`':
			j := strings.IndexByte(s[i+1:], '`')
			if j < 0 {
				j = len(s) - i - 1
			}
			toks = append(toks, token{tokIdent, s[i+1 : i+1+j]})
			i += j + 2
		case isDigit(c) || (c == '.' && i+1 < len(s) && isDigit(s[i+1])):
			j := i + 1
			for j < len(s) && (isIdentByte(s[j]) || ((s[j] == '+' || s[j] == '-') && (s[j-1] == 'e' || s[j-1] == 'E'))) {
				j++
			}
			toks = append(toks, token{tokNumber, s[i:j]})
			i = j
		case isIdentStart(c):
			j := i + 1
			for j < len(s) && isIdentByte(s[j]) {
				j++
			}
			toks = append(toks, token{tokIdent, s[i:j]})
			i = j
		case c == ':':
			n := 1
			for n < 3 && i+n < len(s) && s[i+n] == ':' {
				n++
			}
			toks = append(toks, token{tokOp, s[i : i+n]})
			i += n
		case c == '%':
			// %op% operators, e.g. %>% or %in%.
			j := strings.IndexAny(s[i+1:], "%\n")
			if j < 0 || s[i+1+j] != '%' {
				toks = append(toks, token{tokOp, "%"})
				i++
				continue
			}
			toks = append(toks, token{tokOp, s[i : i+j+2]})
			i += j + 2
		default:
			toks = append(toks, token{tokOp, string(c)})
			i++
		}
	}
	for len(pos) < len(toks) {
		pos = append(pos, start)
	}
	return toks, pos
}

// lexString reads a quoted string at the start of s and returns its content
// (escapes left as written, which is enough for package names) and length.
func lexString(s string) (string, int) {
	q := s[0]
	var b strings.Builder
	i := 1
	for i < len(s) && s[i] != q {
		if s[i] == '\\' && i+1 < len(s) {
			b.WriteByte(s[i+1])
			i += 2
			continue
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String(), min(i+1, len(s))
}

// lexRawString reads an R 4.0 raw string, r"(...)", r"[...]", r"{...}", with
// optional dashes between the quote and the bracket (r"--(...)--").
func lexRawString(s string) (string, int, bool) {
	q := s[1]
	i := 2
	for i < len(s) && s[i] == '-' {
		i++
	}
	dashes := s[2:i]
	if i >= len(s) {
		return "", 0, false
	}
	var closer byte
	switch s[i] {
	case '(':
		closer = ')'
	case '[':
		closer = ']'
	case '{':
		closer = '}'
	default:
		return "", 0, false
	}
	end := string(closer) + dashes + string(q)
	body := s[i+1:]
	j := strings.Index(body, end)
	if j < 0 {
		return body, len(s), true
	}
	return body[:j], i + 1 + j + len(end), true
}

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '.' || c >= 0x80 || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isIdentByte(c byte) bool  { return isIdentStart(c) || isDigit(c) || c == '_' }

// rArg is one argument of a call: its name when written name = value, and
// the value's tokens.
type rArg struct {
	name string
	toks []token
}

// callArgs parses the arguments of the call whose "(" is toks[open]. It
// returns them and the index of the matching ")" (len(toks) if unbalanced).
func callArgs(toks []token, open int) ([]rArg, int) {
	var args []rArg
	var cur []token
	depth := 0
	flush := func() {
		a := rArg{toks: cur}
		if len(cur) >= 2 && (cur[0].kind == tokIdent || cur[0].kind == tokString) && cur[1] == (token{tokOp, "="}) {
			a = rArg{name: cur[0].val, toks: cur[2:]}
		}
		if len(a.toks) > 0 || a.name != "" {
			args = append(args, a)
		}
		cur = nil
	}
	for i := open + 1; i < len(toks); i++ {
		t := toks[i]
		if t.kind == tokOp {
			switch t.val {
			case "(", "[", "{":
				depth++
			case ")", "]", "}":
				if depth == 0 {
					flush()
					return args, i
				}
				depth--
			case ",":
				if depth == 0 {
					flush()
					continue
				}
			}
		}
		cur = append(cur, t)
	}
	flush()
	return args, len(toks)
}

// pickArg returns the argument named one of names, else the first unnamed.
func pickArg(args []rArg, names ...string) (rArg, bool) {
	for _, a := range args {
		for _, n := range names {
			if a.name == n {
				return a, true
			}
		}
	}
	for _, a := range args {
		if a.name == "" {
			return a, true
		}
	}
	return rArg{}, false
}

// isTrue reports whether an argument is literally TRUE or T.
func (a rArg) isTrue() bool {
	return len(a.toks) == 1 && a.toks[0].kind == tokIdent && (a.toks[0].val == "TRUE" || a.toks[0].val == "T")
}

// literals returns the string literals in the argument: "x" or c("a", "b").
func (a rArg) literals() []string {
	var out []string
	for _, t := range a.toks {
		if t.kind == tokString {
			out = append(out, t.val)
		}
	}
	return out
}

// calledAt reports whether toks[i] is a call of a free function (not x$f(),
// x@f()), optionally namespaced (base::library()).
func calledAt(toks []token, i int) bool {
	if i+1 >= len(toks) || toks[i+1] != (token{tokOp, "("}) {
		return false
	}
	return i == 0 || (toks[i-1].val != "$" && toks[i-1].val != "@")
}

// packageName is CRAN's rule for a package name: letters, digits and dots,
// starting with a letter, not ending with a dot, at least two characters.
var packageName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9.]*[A-Za-z0-9]$`)

// ValidPackageName reports whether name can be an R package name.
func ValidPackageName(name string) bool { return packageName.MatchString(name) }

// ScriptPackages returns the R packages an R script uses, sorted and without
// duplicates: library(x), library("x"), require(x), requireNamespace("x"),
// loadNamespace("x"), x::f and x:::f. Comments and string contents are not
// code, so a package named only there is not counted; neither is a name
// passed in a variable (library(p, character.only = TRUE)). Base packages are
// included; MissingPackages never reports them.
func ScriptPackages(src []byte) []string {
	toks := lexR(src)
	set := map[string]bool{}
	for i, t := range toks {
		if t.kind != tokIdent && t.kind != tokString {
			continue
		}
		if i+1 < len(toks) && toks[i+1].kind == tokOp && (toks[i+1].val == "::" || toks[i+1].val == ":::") {
			set[t.val] = true
			continue
		}
		if t.kind != tokIdent || !calledAt(toks, i) {
			continue
		}
		switch t.val {
		case "library", "require":
			args, _ := callArgs(toks, i+1)
			a, ok := pickArg(args, "package")
			if !ok || len(a.toks) != 1 {
				continue
			}
			literal := a.toks[0].kind == tokString
			byName := a.toks[0].kind == tokIdent
			if co, ok := namedArg(args, "character.only"); ok && co.isTrue() {
				byName = false
			}
			if literal || byName {
				set[a.toks[0].val] = true
			}
		case "requireNamespace", "loadNamespace":
			args, _ := callArgs(toks, i+1)
			if a, ok := pickArg(args, "package"); ok && len(a.toks) == 1 && a.toks[0].kind == tokString {
				set[a.toks[0].val] = true
			}
		}
	}
	return sortedValid(set)
}

func namedArg(args []rArg, name string) (rArg, bool) {
	for _, a := range args {
		if a.name == name {
			return a, true
		}
	}
	return rArg{}, false
}

func sortedValid(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for p := range set {
		if ValidPackageName(p) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// plumberAnnotation matches a plumber endpoint annotation line: #* @get /x,
// or the older #' @post /y.
var plumberAnnotation = regexp.MustCompile(`(?m)^[ \t]*#['*][ \t]*@(get|post|put|delete|head|options|patch|use|assets)\b`)

// IsPlumberScript reports whether the file called name is an R plumber
// script: an .R file with at least one endpoint annotation (#* @get,
// @post, @put, @delete, @head, @options, @patch, @use or @assets).
func IsPlumberScript(name string, src []byte) bool {
	return strings.EqualFold(filepath.Ext(name), ".r") && plumberAnnotation.Match(src)
}
