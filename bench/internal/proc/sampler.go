package proc

import (
	"sync"
	"time"
)

// PeakSampler follows the summed VmRSS of a set of processes (nginx's
// master and workers, say) and keeps the highest sum it saw. A single
// process's peak is better read from VmHWM, which the kernel keeps exactly.
type PeakSampler struct {
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	mu   sync.Mutex // protects peak
	peak uint64
}

// StartPeak samples every interval until Stop; pids is called each time so
// that processes started later are counted.
func StartPeak(interval time.Duration, pids func() []int) *PeakSampler {
	s := &PeakSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			s.sample(pids())
			select {
			case <-s.stop:
				s.sample(pids())
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *PeakSampler) sample(pids []int) {
	var sum uint64
	for _, p := range pids {
		if m, err := ReadMem(p); err == nil {
			sum += m.RSS
		}
	}
	s.mu.Lock()
	s.peak = max(s.peak, sum)
	s.mu.Unlock()
}

// Stop ends sampling and returns the peak summed RSS in bytes. It may be
// called more than once.
func (s *PeakSampler) Stop() uint64 {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}
