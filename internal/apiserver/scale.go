package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/store"
)

// maxPrewarm bounds a pre-warm's duration.
const maxPrewarm = 7 * 24 * time.Hour

// scaleStatus is an autoscaled deployment's scaling state for show: the
// autoscaler's stored decision and what runs.
func (s *Server) scaleStatus(d store.Deployment, p *resolve.Plan, ins []api.Instance) *api.ScaleStatus {
	a := p.Autoscale
	st := &api.ScaleStatus{MinInstances: a.MinInstances, MaxInstances: a.MaxInstances, DesiredInstances: p.InstanceCount}
	for _, in := range ins {
		switch in.State {
		case store.InstanceStopping, store.InstanceExited, store.InstanceParked:
			continue
		}
		st.Instances++
		if in.Ready {
			st.ReadyInstances++
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sc, err := s.cfg.Store.GetScale(ctx, d.Endpoint, d.Name)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.log.Error("read scale", "endpoint", d.Endpoint, "deployment", d.Name, "err", err)
		}
		return st
	}
	if !sc.DecidedAt.IsZero() {
		st.DesiredInstances = sc.Desired
		at := sc.DecidedAt
		st.LastDecision, st.LastDecisionAt = sc.Decision, &at
	}
	st.PanicMode, st.UtilizationPercentage = sc.Panic, sc.Utilization
	if sc.PrewarmInstances > 0 && s.cfg.Now().Before(sc.PrewarmUntil) {
		until := sc.PrewarmUntil
		st.PrewarmInstances, st.PrewarmUntil = sc.PrewarmInstances, &until
	}
	return st
}

// prewarm asks an autoscaled deployment for at least N instances for a
// while: the floor is kept in the store, where the leader's autoscaler
// reads it.
func (s *Server) prewarm(w http.ResponseWriter, r *http.Request) error {
	epName, name := nameParam(r, "endpoint"), nameParam(r, "deployment")
	var req api.Prewarm
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	d, err := s.cfg.Store.GetDeployment(r.Context(), epName, name)
	if err != nil {
		return s.deploymentErr(r.Context(), epName, name, err)
	}
	if d.State == store.StateDeleting {
		return conflict(name, "deployment %s is being deleted", name)
	}
	rec, err := resolve.DecodeRecord(d.Spec)
	if err != nil || rec.Plan == nil {
		return fmt.Errorf("deployment %s/%s: stored record: %v", epName, name, err)
	}
	a := rec.Plan.Autoscale
	if a == nil {
		return badRequest("scale_settings", "deployment %s has a fixed instance_count (scale_settings type default): pre-warm is for autoscaled deployments (scale_settings type target_utilization); change the count with: plumbline online-deployment update --name %s --endpoint-name %s --set instance_count=N", name, name, epName)
	}
	now := s.cfg.Now()
	n, until, msg := 0, time.Time{}, "pre-warm cancelled"
	if !req.Cancel {
		n = req.Instances
		if n == 0 {
			n = max(1, a.MinInstances)
		}
		if n < 0 || n > a.MaxInstances {
			return badRequest("instances", "instances must be from 1 to max_instances (%d); got %d", a.MaxInstances, req.Instances)
		}
		dur := a.ScaleToZeroAfter
		if req.DurationSeconds != 0 {
			dur = time.Duration(req.DurationSeconds) * time.Second
		}
		if dur <= 0 || dur > maxPrewarm {
			return badRequest("duration_seconds", "duration_seconds must be from 1 to %d (7 days); got %d", int(maxPrewarm/time.Second), req.DurationSeconds)
		}
		until = now.Add(dur)
		msg = fmt.Sprintf("pre-warm: at least %d instance(s) until %s", n, until.UTC().Format(time.RFC3339))
	}
	_, err = s.cfg.Store.UpdateScale(r.Context(), epName, name, func(sc *store.Scale) error {
		sc.PrewarmInstances, sc.PrewarmUntil = n, until
		return nil
	})
	if err != nil {
		return s.deploymentErr(r.Context(), epName, name, err)
	}
	s.event(r, epName, name, "Normal", "Prewarm", msg)
	s.cfg.Runtime.Notify()
	writeJSON(w, http.StatusAccepted, s.deploymentOut(d))
	return nil
}
