package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	k8s "k8s.io/client-go/kubernetes"

	"github.com/plumbline/plumbline/internal/driver/kubernetes"
	"github.com/plumbline/plumbline/internal/endpointslices"
	"github.com/plumbline/plumbline/internal/gateway"
)

// Where a gateway learns its ready instances (serve --routes).
const (
	// RoutesStore: the instance rows of the shared store (the default).
	RoutesStore = "store"
	// RoutesEndpointSlices: the EndpointSlices of the online deployments'
	// Services in --k8s-namespace; endpoints, keys, traffic and settings
	// still come from the store.
	RoutesEndpointSlices = "endpointslices"
)

// routeFeed is the gateway's route source and the way to rebuild its table
// at once (after an API change).
type routeFeed interface {
	gateway.RouteSource
	sync(ctx context.Context, gw *gateway.Gateway) error
}

// sliceSource is the gateway's RouteSource under --routes endpointslices:
// the store's table (endpoints, keys, traffic, the deployments' settings)
// with each deployment's instances replaced by the pods its EndpointSlices
// list as ready. A pod leaves the table as soon as its slice says it is not
// ready or terminating, before its container gets SIGTERM. Its version is
// the store's routing version plus the slices' change count: both only
// grow, so the sum does, and a change of either is a new table.
type sliceSource struct {
	store  *storeSource
	slices *endpointslices.Source
}

var _ routeFeed = (*sliceSource)(nil)

// newSliceSource starts the EndpointSlice informer of the namespace and
// returns once its first list is in the table.
func newSliceSource(ctx context.Context, cfg Config, store *storeSource, log *slog.Logger) (*sliceSource, error) {
	k := cfg.Kubernetes
	if k.Namespace == "" {
		return nil, fmt.Errorf("--routes endpointslices needs --k8s-namespace: the namespace of the online deployments' Services")
	}
	rc, err := kubernetes.RESTConfig(k.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("--routes endpointslices: %w", err)
	}
	client, err := k8s.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("--routes endpointslices: %w", err)
	}
	src := endpointslices.New(client, k.Namespace, log.With("component", "endpointslices"))
	if err := src.Run(ctx); err != nil {
		return nil, err
	}
	log.Info("gateway routes from EndpointSlices", "namespace", k.Namespace)
	return &sliceSource{store: store, slices: src}, nil
}

// Routes implements gateway.RouteSource: it waits for a change of the
// store's routing version or of the slices.
func (s *sliceSource) Routes(ctx context.Context, after int64) (*gateway.Snapshot, int64, error) {
	for {
		changed := s.slices.Changed() // before the version: no change is missed
		sv, err := s.store.st.RoutingVersion(ctx)
		if err != nil {
			return nil, 0, err
		}
		if v := sv + s.slices.Version(); v > after {
			snap, err := buildSnapshot(ctx, s.store.st)
			if err != nil {
				return nil, 0, err
			}
			return s.slices.Table().Fill(snap), v, nil
		}
		wctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-changed:
				cancel()
			case <-wctx.Done():
			}
		}()
		_, err = s.store.st.WaitRoutingChange(wctx, sv)
		cancel()
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, 0, err
		}
	}
}

// Report implements gateway.RouteSource.
func (s *sliceSource) Report(ctx context.Context, reachable map[string]int) error {
	return s.store.Report(ctx, reachable)
}

// sync rebuilds gw's table now (see storeSource.sync).
func (s *sliceSource) sync(ctx context.Context, gw *gateway.Gateway) error {
	sv, err := s.store.st.RoutingVersion(ctx)
	if err != nil {
		return err
	}
	v := sv + s.slices.Version()
	snap, err := buildSnapshot(ctx, s.store.st)
	if err != nil {
		return err
	}
	gw.Apply(s.slices.Table().Fill(snap), v)
	return nil
}
