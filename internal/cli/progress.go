package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal (progress is drawn in place
// only there; elsewhere a line per step is printed).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressBar draws "label [=====     ] 45% 1.2 MB / 2.6 MB" in place.
type progressBar struct {
	w     io.Writer
	label string
	tty   bool

	mu   sync.Mutex // protects last
	last time.Time
}

func newProgressBar(w io.Writer, label string) *progressBar {
	return &progressBar{w: w, label: label, tty: isTerminal(w)}
}

// update redraws at most ten times a second.
func (p *progressBar) update(done, total int64) {
	if !p.tty {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) < 100*time.Millisecond && done < total {
		return
	}
	p.last = time.Now()
	const width = 30
	frac := 1.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	n := int(frac * width)
	fmt.Fprintf(p.w, "\r%s [%s%s] %3.0f%% %s / %s ", p.label, strings.Repeat("=", n), strings.Repeat(" ", width-n), frac*100, humanBytes(done), humanBytes(total))
}

// clear erases the bar (on a terminal) and prints nothing.
func (p *progressBar) clear() {
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K")
	}
}

func (p *progressBar) finish(msg string) {
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K")
	}
	fmt.Fprintln(p.w, msg)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
