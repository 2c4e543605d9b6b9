package plumber

import (
	"encoding/json"
	"os"
	"path"
	"sort"
	"strings"
)

// instruction is one Dockerfile instruction after line continuations are
// joined and comment lines dropped.
type instruction struct {
	cmd  string // upper-cased: FROM, RUN, ARG…
	args string
}

// parseDockerfile splits a Dockerfile into instructions. It knows the
// default escape character (\) only; heredocs (RUN <<EOF), rare in R
// images, are read as ordinary lines.
func parseDockerfile(src []byte) []instruction {
	var out []instruction
	var cur strings.Builder
	emit := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		cmd, args := line, ""
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			cmd, args = line[:i], strings.TrimSpace(line[i:])
		}
		out = append(out, instruction{cmd: strings.ToUpper(cmd), args: args})
	}
	for _, line := range strings.Split(string(src), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue // a comment line, even inside a continuation
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(trimmed, `\`))
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(trimmed)
		emit()
	}
	emit()
	return out
}

// shellWord is a word of a shell command line, or an operator (&&, ||, ;,
// |, &, parentheses) that separates commands.
type shellWord struct {
	text string
	op   bool
}

// shellWords splits a shell command line the way sh would for our purpose:
// quotes and backslashes are removed, operators separate commands, and a
// word starting with # comments out the rest. It does not expand anything.
func shellWords(s string) []shellWord {
	var words []shellWord
	var w strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			words = append(words, shellWord{text: w.String()})
		}
		w.Reset()
		inWord = false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			flush()
		case c == '#' && !inWord:
			return words
		case c == '\'':
			inWord = true
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				j = len(s) - i - 1
			}
			w.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			inWord = true
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`\n", s[i+1]) >= 0 {
					i++
				}
				w.WriteByte(s[i])
			}
		case c == '\\':
			inWord = true
			if i+1 < len(s) {
				i++
				w.WriteByte(s[i])
			}
		case strings.IndexByte(";&|()", c) >= 0:
			flush()
			op := string(c)
			if i+1 < len(s) && (c == '&' || c == '|') && s[i+1] == c {
				op += string(c)
				i++
			}
			words = append(words, shellWord{text: op, op: true})
		default:
			inWord = true
			w.WriteByte(c)
		}
	}
	flush()
	return words
}

// runCommands returns the argv of each command a RUN instruction runs, in
// shell form (split on operators) or exec form (a JSON array).
func runCommands(args string) [][]string {
	if strings.HasPrefix(args, "[") {
		var argv []string
		if json.Unmarshal([]byte(args), &argv) == nil {
			return [][]string{argv}
		}
	}
	var cmds [][]string
	var cur []string
	for _, w := range shellWords(args) {
		if w.op {
			if len(cur) > 0 {
				cmds = append(cmds, cur)
			}
			cur = nil
			continue
		}
		cur = append(cur, w.text)
	}
	if len(cur) > 0 {
		cmds = append(cmds, cur)
	}
	return cmds
}

// DockerfilePackages returns the R packages a Dockerfile's RUN instructions
// install, sorted and without duplicates, from:
//   - R code anywhere in a RUN (R -e "…", Rscript -e '…', echo … | R):
//     install.packages('x', …), install.packages(c('a', 'b')),
//     remotes::/devtools::install_github('user/repo'), install_cran,
//     install_version, install_git(url), BiocManager::install, pak::pkg_install and pak::pak;
//   - littler: install2.r x y, install.r, installGithub.r user/repo, installBioc.r;
//   - Debian packages: apt-get install r-cran-x (and r-bioc-x), reported as
//     x in Debian's lower case (MissingPackages matches them ignoring case).
//
// A GitHub spec gives the repository's name, or the sub-directory's when it
// names one (user/repo/subdir). Placeholders that are not package names,
// such as the seed's '<PACKAGE-NAME>', are dropped.
func DockerfilePackages(dockerfile []byte) []string {
	set := map[string]bool{}
	for _, in := range parseDockerfile(dockerfile) {
		if in.cmd != "RUN" {
			continue
		}
		for _, argv := range runCommands(in.args) {
			for _, p := range commandPackages(argv) {
				set[p] = true
			}
			for _, w := range argv {
				if strings.Contains(w, "(") {
					for _, p := range rInstalledPackages(w) {
						set[p] = true
					}
				}
			}
		}
	}
	return sortedValid(set)
}

// littlerValueFlags are install2.r options that take a value.
var littlerValueFlags = map[string]bool{
	"-d": true, "--deps": true, "-n": true, "--ncpus": true, "-r": true, "--repos": true,
	"-l": true, "--libloc": true, "-t": true, "--type": true, "-m": true, "--method": true,
}

// commandPackages returns the packages one shell command installs through
// littler or apt.
func commandPackages(argv []string) []string {
	for len(argv) > 0 && (argv[0] == "sudo" || argv[0] == "env" || strings.Contains(argv[0], "=")) {
		argv = argv[1:]
	}
	if len(argv) == 0 {
		return nil
	}
	var out []string
	switch path.Base(argv[0]) {
	case "install2.r", "install.r", "installBioc.r", "installGithub.r":
		github := path.Base(argv[0]) == "installGithub.r"
		for i := 1; i < len(argv); i++ {
			a := argv[i]
			switch {
			case littlerValueFlags[a]:
				i++
			case strings.HasPrefix(a, "-"):
			case github:
				out = append(out, repoPackage(a))
			default:
				out = append(out, a)
			}
		}
	case "apt-get", "apt", "aptitude":
		install := false
		for _, a := range argv[1:] {
			if a == "install" {
				install = true
				continue
			}
			if !install {
				continue
			}
			for _, prefix := range []string{"r-cran-", "r-bioc-"} {
				if name, ok := strings.CutPrefix(a, prefix); ok {
					name, _, _ = strings.Cut(name, "=")
					name, _, _ = strings.Cut(name, ":")
					out = append(out, name)
				}
			}
		}
	}
	return out
}

// rInstalledPackages returns the packages that install calls in R code name.
func rInstalledPackages(code string) []string {
	toks := lexR([]byte(code))
	var out []string
	for i, t := range toks {
		if t.kind != tokIdent || !calledAt(toks, i) {
			continue
		}
		ns := ""
		if i >= 2 && toks[i-1].kind == tokOp && (toks[i-1].val == "::" || toks[i-1].val == ":::") {
			ns = toks[i-2].val
		}
		var fromRepo bool
		switch {
		case t.val == "install.packages", t.val == "install_cran", t.val == "install_version":
		case t.val == "install" && ns == "BiocManager":
		case t.val == "pkg_install", t.val == "pak" && ns == "pak":
			fromRepo = true // pak takes "x", "user/repo" and "github::user/repo"
		case strings.HasPrefix(t.val, "install_git"), t.val == "install_bitbucket":
			fromRepo = true // install_github, install_gitlab, install_git(url)
		default:
			continue
		}
		args, _ := callArgs(toks, i+1)
		a, ok := pickArg(args, "pkgs", "package", "repo", "url")
		if !ok {
			continue
		}
		for _, s := range a.literals() {
			if fromRepo {
				s = repoPackage(s)
			}
			out = append(out, s)
		}
	}
	return out
}

// repoPackage turns a remote package spec into the package's likely name:
// "user/repo@ref" → repo, "user/repo/subdir" → subdir,
// "github::user/repo" → repo, "https://host/user/repo.git" → repo, "x" → x.
func repoPackage(spec string) string {
	if i := strings.Index(spec, "::"); i >= 0 && !strings.Contains(spec[:i], "/") {
		spec = spec[i+2:]
	}
	if i := strings.Index(spec, "://"); i >= 0 {
		spec = path.Base(strings.TrimSuffix(spec[i+3:], "/"))
	}
	spec, _, _ = strings.Cut(spec, "@")
	spec, _, _ = strings.Cut(spec, "#")
	parts := strings.Split(spec, "/")
	name := parts[len(parts)-1]
	if len(parts) == 2 {
		name = parts[1]
	}
	return strings.TrimSuffix(name, ".git")
}

// DockerfileFrom returns the base image of the Dockerfile's final stage:
// FROM flags (--platform) and "AS name" are dropped, a stage built FROM an
// earlier stage resolves to that stage's image, and ARGs declared before the
// first FROM are substituted ($NAME, ${NAME}, ${NAME:-default}). It returns
// "" when there is no FROM.
func DockerfileFrom(dockerfile []byte) string {
	args := map[string]string{}
	stages := map[string]string{} // lower-cased stage name → its base image
	seenFrom := false
	last := ""
	for _, in := range parseDockerfile(dockerfile) {
		switch in.cmd {
		case "ARG":
			if !seenFrom {
				name, val, _ := strings.Cut(in.args, "=")
				args[strings.TrimSpace(name)] = strings.Trim(strings.TrimSpace(val), `"'`)
			}
		case "FROM":
			seenFrom = true
			fields := strings.Fields(in.args)
			for len(fields) > 0 && strings.HasPrefix(fields[0], "--") {
				fields = fields[1:]
			}
			if len(fields) == 0 {
				continue
			}
			image := os.Expand(fields[0], func(name string) string {
				name, def, hasDef := strings.Cut(name, ":-")
				if v := args[name]; v != "" || !hasDef {
					return v
				}
				return def
			})
			if base, ok := stages[strings.ToLower(image)]; ok {
				image = base
			}
			if len(fields) == 3 && strings.EqualFold(fields[1], "as") {
				stages[strings.ToLower(fields[2])] = image
			}
			last = image
		}
	}
	return last
}

// IsPlumberImage reports whether an image reference names a plumber image:
// rstudio/plumber, or any repository whose path contains "plumber"
// (myacr.azurecr.io/team/r-plumber:1.0). A general R image such as
// rocker/r-ver is not one: it lacks plumber unless its Dockerfile installs it.
func IsPlumberImage(ref string) bool {
	ref = strings.ToLower(ref)
	ref, _, _ = strings.Cut(ref, "@") // digest
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i] // tag
	}
	return strings.Contains(ref, "plumber")
}

// DockerfileExtras returns the R packages a Dockerfile installs that the
// scoring script never names, sorted: plumbline runs the script with this
// machine's R, so a model needing them at run time fails when called.
// plumber (the launcher runs it) and carrier are never extras: a carrier
// crate, once unserialized, is an ordinary R function and calling it needs
// nothing from carrier (the seed's Dockerfile installs carrier because its
// training job used it).
func DockerfileExtras(dockerfile, script []byte) []string {
	named := map[string]bool{"plumber": true, "carrier": true}
	for _, p := range ScriptPackages(script) {
		named[p] = true
	}
	var extra []string
	for _, p := range DockerfilePackages(dockerfile) {
		if !named[p] {
			extra = append(extra, p)
			named[p] = true
		}
	}
	sort.Strings(extra)
	return extra
}
