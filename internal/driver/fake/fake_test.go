package fake_test

import (
	"testing"

	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/driver/drivertest"
	"github.com/plumbline/plumbline/internal/driver/fake"
)

func TestConformance(t *testing.T) {
	d := fake.New(fake.Options{})
	t.Cleanup(d.Close)
	drivertest.Run(t, d, drivertest.Harness{
		Spec: func(t *testing.T, id string, s drivertest.Server) driver.InstanceSpec {
			d.SetBehavior(id, fake.Behavior{CrashAfter: s.ExitAfter, ExitCode: s.ExitCode, IgnoreTerm: s.IgnoreTerm})
			return driver.InstanceSpec{
				ID:          id,
				Runtime:     driver.RuntimeGeneric,
				Command:     []string{"fake"},
				ModelDir:    "/models/" + id,
				CodeDir:     "/code/" + id,
				EntryScript: "score.py",
				Env:         s.Env,
			}
		},
		Exits:       true,
		IgnoresTerm: true,
		Reopen: func(t *testing.T, old driver.Driver) driver.Driver {
			old.(*fake.Driver).Restart()
			return old
		},
	})
}
