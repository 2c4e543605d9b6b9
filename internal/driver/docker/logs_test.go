package docker

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// frame is one frame of an engine log stream: stream 1 (stdout) or 2
// (stderr), and its payload.
type frame struct {
	stream byte
	data   string
}

// stamp is a frame's payload with its time, as the engine sends it when
// asked for timestamps.
func stamp(at time.Time, text string) string { return at.Format(time.RFC3339Nano) + " " + text }

func multiplex(frames []frame) *bytes.Reader {
	var b bytes.Buffer
	for _, f := range frames {
		var h [8]byte
		h[0] = f.stream
		binary.BigEndian.PutUint32(h[4:], uint32(len(f.data)))
		b.Write(h[:])
		b.WriteString(f.data)
	}
	return bytes.NewReader(b.Bytes())
}

func TestCopyStamped(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	t1 := t0.Add(time.Microsecond)
	var got []stampedLine
	err := copyStamped(multiplex([]frame{
		{1, stamp(t0, "one\n")},
		{2, stamp(t0, "err one\n")},
		{1, stamp(t0, "long-")},     // a long line in two frames…
		{2, stamp(t1, "err two\n")}, // …with the other stream between them
		{1, stamp(t1, "line\n")},
		{1, "no time at all\n"},
		{1, stamp(t1, "last, no newline")},
	}), func(l stampedLine) error { got = append(got, l); return nil })
	if err != nil {
		t.Fatal(err)
	}
	want := []stampedLine{
		{t0, "one\n"},
		{t0, "err one\n"},
		{t1, "err two\n"},
		{t0, "long-line\n"},
		{time.Time{}, "no time at all\n"},
		{t1, "last, no newline"},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(stampedLine{})); diff != "" {
		t.Errorf("copyStamped lines (-want +got):\n%s", diff)
	}
}

func TestResume(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	t1, t2 := t0.Add(time.Millisecond), t0.Add(2*time.Millisecond)
	at := func(at time.Time, text string) stampedLine { return stampedLine{at, text + "\n"} }
	tests := []struct {
		name   string
		at     time.Time     // the tail's last time
		sent   []string      // the tail's lines at that time
		follow []stampedLine // what the follow brings
		want   string        // what passes
	}{{
		name:   "lines after the tail pass",
		at:     t1,
		sent:   []string{"b\n"},
		follow: []stampedLine{at(t0, "a"), at(t1, "b"), at(t2, "c"), at(t2, "d")},
		want:   "c\nd\n",
	}, {
		name:   "a line at the tail's time written after it passes",
		at:     t1,
		sent:   []string{"b\n"},
		follow: []stampedLine{at(t1, "b"), at(t1, "b2"), at(t2, "c")},
		want:   "b2\nc\n",
	}, {
		name:   "the tail took the end of a group of lines with one time",
		at:     t1,
		sent:   []string{"y\n", "z\n"},
		follow: []stampedLine{at(t0, "w"), at(t1, "x"), at(t1, "y"), at(t1, "z"), at(t2, "after")},
		want:   "after\n",
	}, {
		name:   "a repeated line after the tail is new",
		at:     t1,
		sent:   []string{"r\n"},
		follow: []stampedLine{at(t1, "r"), at(t1, "r"), at(t2, "r")},
		want:   "r\nr\n",
	}, {
		name:   "held lines the tail never matched are passed, not lost",
		at:     t1,
		sent:   []string{"gone\n"},
		follow: []stampedLine{at(t1, "p"), at(t1, "q"), at(t2, "c")},
		want:   "p\nq\nc\n",
	}, {
		name:   "a line without a time passes",
		at:     t1,
		sent:   []string{"b\n"},
		follow: []stampedLine{at(t0, "a"), {text: "plain\n"}, at(t1, "b"), at(t2, "c")},
		want:   "plain\nc\n",
	}, {
		name:   "a clock that steps back after the tail loses nothing",
		at:     t1,
		sent:   []string{"b\n"},
		follow: []stampedLine{at(t1, "b"), at(t2, "c"), at(t0, "d")},
		want:   "c\nd\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			r := &resume{w: &out, at: tt.at, sent: tt.sent}
			for _, l := range tt.follow {
				if err := r.line(l); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.flush(); err != nil {
				t.Fatal(err)
			}
			if got := out.String(); got != tt.want {
				t.Errorf("passed %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("held lines are passed when the follow ends", func(t *testing.T) {
		var out strings.Builder
		r := &resume{w: &out, at: t1, sent: []string{"gone\n"}}
		r.line(at(t1, "p"))
		if out.Len() != 0 {
			t.Fatalf("passed %q before the follow ended, want the line held", out.String())
		}
		r.flush()
		if got, want := out.String(), "p\n"; got != want {
			t.Errorf("passed %q at the end, want %q", got, want)
		}
	})
}
