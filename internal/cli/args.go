package cli

import (
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/plumbline/plumbline/internal/spec"
)

// argSep joins the words of a flag that takes several (--set a=1 b=2) into
// one flag value. No command-line argument can contain it.
const argSep = "\x00"

// nargsAnnotation marks a flag that takes every word after it up to the
// next flag, as az's nargs='+' flags do (--set, --add, --remove, --tags).
const nargsAnnotation = "plumbline/nargs"

func markNargs(f *pflag.FlagSet, name string) {
	_ = f.SetAnnotation(name, nargsAnnotation, []string{"+"})
}

// normalizeArgs rewrites an az-style command line into what cobra parses:
//   - an unambiguous prefix of a long flag stands for the flag, as az's
//     argparse accepts (--endpoint for --endpoint-name, --deployment for
//     --deployment-name); an ambiguous one is a usage error;
//   - a flag that takes several words gathers the words after it, up to the
//     next flag, into one value joined by argSep.
func normalizeArgs(root *cobra.Command, args []string) ([]string, error) {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		return args, nil
	}
	long := map[string]*pflag.Flag{}
	short := map[string]*pflag.Flag{}
	visit := func(f *pflag.Flag) {
		long[f.Name] = f
		if f.Shorthand != "" {
			short[f.Shorthand] = f
		}
	}
	cmd.LocalFlags().VisitAll(visit)
	cmd.InheritedFlags().VisitAll(visit)

	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			out = append(out, args[i:]...)
			break
		}
		var f *pflag.Flag
		var val string
		var hasVal bool
		switch {
		case strings.HasPrefix(a, "--") && len(a) > 2:
			var name string
			name, val, hasVal = strings.Cut(a[2:], "=")
			if f = long[name]; f == nil {
				var cands []string
				for n := range long {
					if strings.HasPrefix(n, name) {
						cands = append(cands, n)
					}
				}
				sort.Strings(cands)
				switch len(cands) {
				case 0:
				case 1:
					f = long[cands[0]]
				default:
					return nil, usageErrorf("--%s is ambiguous: it could be --%s", name, strings.Join(cands, ", --"))
				}
			}
		case len(a) == 2 && a[0] == '-' && a[1] != '-':
			f = short[a[1:]]
		}
		if f == nil {
			out = append(out, a)
			continue
		}
		if f.NoOptDefVal != "" { // a boolean (or optional-value) flag
			if hasVal {
				out = append(out, "--"+f.Name+"="+val)
			} else {
				out = append(out, "--"+f.Name)
			}
			continue
		}
		_, nargs := f.Annotations[nargsAnnotation]
		var words []string
		switch {
		case hasVal:
			words = append(words, val)
		case i+1 < len(args) && (!nargs || !looksLikeFlag(args[i+1])):
			i++
			words = append(words, args[i])
		default:
			out = append(out, "--"+f.Name) // cobra reports the missing value
			continue
		}
		for nargs && i+1 < len(args) && !looksLikeFlag(args[i+1]) {
			i++
			words = append(words, args[i])
		}
		out = append(out, "--"+f.Name+"="+strings.Join(words, argSep))
	}
	return out, nil
}

// looksLikeFlag is true for -x and --xyz, not for - (stdin) or -1.
func looksLikeFlag(s string) bool {
	if len(s) < 2 || s[0] != '-' {
		return false
	}
	return s[1] < '0' || s[1] > '9'
}

// wordsValue is a flag that takes several words (markNargs) and may be
// repeated; every word is appended.
type wordsValue struct{ words *[]string }

func (v wordsValue) String() string { return strings.Join(*v.words, " ") }
func (v wordsValue) Type() string   { return "words" }
func (v wordsValue) Set(s string) error {
	*v.words = append(*v.words, strings.Split(s, argSep)...)
	return nil
}

// wordsFlag defines a flag taking several words, repeatable.
func wordsFlag(f *pflag.FlagSet, p *[]string, name, short, usage string) {
	f.VarP(wordsValue{p}, name, short, usage)
	markNargs(f, name)
}

// genericUpdate is az's generic update arguments of one command, in the
// order given: --set, --add, --remove, and --force-string.
type genericUpdate struct {
	ops   []spec.Update
	force bool
}

type updateValue struct {
	u  *genericUpdate
	op spec.UpdateOp
}

func (v updateValue) String() string { return "" }
func (v updateValue) Type() string   { return "words" }
func (v updateValue) Set(s string) error {
	words := strings.Split(s, argSep)
	if v.op == spec.UpdateSet {
		for _, w := range words {
			v.u.ops = append(v.u.ops, spec.Update{Op: spec.UpdateSet, Args: []string{w}})
		}
		return nil
	}
	v.u.ops = append(v.u.ops, spec.Update{Op: v.op, Args: words})
	return nil
}

// addUpdateFlags defines --set on c, and with all also --add, --remove and
// --force-string (the update verbs').
func addUpdateFlags(c *cobra.Command, all bool) *genericUpdate {
	u := &genericUpdate{}
	f := c.Flags()
	f.Var(updateValue{u, spec.UpdateSet}, "set", "update a field: --set a.b=VALUE [c=VALUE …] (VALUE read as JSON; a.b[0] indexes a list; repeatable)")
	markNargs(f, "set")
	if all {
		f.Var(updateValue{u, spec.UpdateAdd}, "add", "add to a list: --add a.list KEY=VALUE [KEY=VALUE …] (one element of those pairs) or --add a.list JSON…")
		markNargs(f, "add")
		f.Var(updateValue{u, spec.UpdateRemove}, "remove", "remove a field or a list element: --remove a.b, --remove a.list INDEX")
		markNargs(f, "remove")
		f.BoolVar(&u.force, "force-string", false, "with --set and --add, keep values as strings instead of reading them as JSON")
	}
	return u
}

// updates are the arguments to apply, in order.
func (u *genericUpdate) updates() []spec.Update {
	out := make([]spec.Update, len(u.ops))
	for i, op := range u.ops {
		op.ForceString = u.force
		out[i] = op
	}
	return out
}
