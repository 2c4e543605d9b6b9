package cli

import (
	"bytes"
	"regexp"
)

// ANSI colours for -o jsonc and yamlc on a terminal, after az's: keys
// blue, strings green, numbers, booleans and null cyan.
const (
	ansiKey    = "\x1b[94m"
	ansiString = "\x1b[32m"
	ansiScalar = "\x1b[36m"
	ansiReset  = "\x1b[0m"
)

// colorJSON colours indented JSON text as writeJSON makes it.
func colorJSON(b []byte) []byte {
	var out bytes.Buffer
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '"':
			j := i + 1
			for j < len(b) && b[j] != '"' {
				if b[j] == '\\' {
					j++
				}
				j++
			}
			j++ // the closing quote
			k := j
			for k < len(b) && b[k] == ' ' {
				k++
			}
			color := ansiString
			if k < len(b) && b[k] == ':' {
				color = ansiKey
			}
			out.WriteString(color)
			out.Write(b[i:j])
			out.WriteString(ansiReset)
			i = j
		case c == '-' || (c >= '0' && c <= '9') || c == 't' || c == 'f' || c == 'n':
			j := i
			for j < len(b) && !bytes.ContainsRune([]byte(",]}\n "), rune(b[j])) {
				j++
			}
			out.WriteString(ansiScalar)
			out.Write(b[i:j])
			out.WriteString(ansiReset)
			i = j
		default:
			out.WriteByte(c)
			i++
		}
	}
	return out.Bytes()
}

// yamlKey matches a block mapping key at the start of a line: "  name:".
var yamlKey = regexp.MustCompile(`(?m)^(\s*(?:- )?)([^\s:#"'][^:\n]*?):( |$)`)

// colorYAML colours the keys of YAML text.
func colorYAML(b []byte) []byte {
	return yamlKey.ReplaceAll(b, []byte("${1}"+ansiKey+"${2}"+ansiReset+":${3}"))
}
