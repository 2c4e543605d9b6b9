// Package endpointslices tells a gateway which pods of each online
// deployment are ready, from the EndpointSlices Kubernetes keeps for the
// deployments' Services (the kubernetes driver makes one headless Service
// per deployment). An informer watches them; every change rebuilds an
// immutable table of ready instances, and Fill puts them into a routing
// Snapshot whose endpoints, keys, traffic and settings come from the
// control plane. A pod leaves the table as soon as its slice says it is not
// ready or terminating, before its container gets SIGTERM (the driver gives
// every pod a preStop pause for that).
//
// This package may import the gateway's types and client-go; it must not
// import the store, the registry, the reconciler or a driver (it reads the
// labels the kubernetes driver writes, by value).
package endpointslices

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/plumbline/plumbline/internal/gateway"
)

// Labels the kubernetes driver puts on each deployment's Service, which the
// EndpointSlice controller copies onto its slices.
const (
	labelManagedBy  = "app.kubernetes.io/managed-by"
	labelEndpoint   = "plumbline.io/endpoint"
	labelDeployment = "plumbline.io/deployment"
)

// Table is the ready instances of every deployment, keyed
// "endpoint/deployment" in lower case. Immutable once published.
type Table map[string][]gateway.Instance

// Source watches EndpointSlices in one namespace.
type Source struct {
	client    kubernetes.Interface
	namespace string
	log       *slog.Logger

	table   atomic.Pointer[Table]
	version atomic.Int64
	mu      sync.Mutex    // protects changed
	changed chan struct{} // closed and replaced on every change
	lister  func() ([]*discoveryv1.EndpointSlice, error)
}

// New returns a Source for namespace; Run starts it.
func New(client kubernetes.Interface, namespace string, log *slog.Logger) *Source {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Source{client: client, namespace: namespace, log: log, changed: make(chan struct{})}
	empty := Table{}
	s.table.Store(&empty)
	return s
}

// Run watches until ctx ends. It returns once the informer's first list is
// in the table (or ctx ends first), and keeps watching in the background.
func (s *Source) Run(ctx context.Context) error {
	f := informers.NewSharedInformerFactoryWithOptions(s.client, 10*time.Minute,
		informers.WithNamespace(s.namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = labelManagedBy + "=plumbline" }))
	inf := f.Discovery().V1().EndpointSlices()
	lister := inf.Lister().EndpointSlices(s.namespace)
	s.lister = func() ([]*discoveryv1.EndpointSlice, error) { return lister.List(labels.Everything()) }
	rebuild := func(any) { s.rebuild() }
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    rebuild,
		UpdateFunc: func(_, n any) { s.rebuild() },
		DeleteFunc: rebuild,
	}); err != nil {
		return err
	}
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced) {
		return fmt.Errorf("endpointslices: the first list of namespace %s did not complete: %w", s.namespace, ctx.Err())
	}
	s.rebuild()
	go func() { <-ctx.Done(); f.Shutdown() }()
	return nil
}

func (s *Source) rebuild() {
	if s.lister == nil {
		return
	}
	slices, err := s.lister()
	if err != nil {
		s.log.Error("endpointslices: list", "err", err)
		return
	}
	t := Build(slices)
	s.table.Store(&t)
	s.version.Add(1)
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// Table returns the current table.
func (s *Source) Table() Table { return *s.table.Load() }

// Version counts the table's changes.
func (s *Source) Version() int64 { return s.version.Load() }

// Changed returns a channel closed at the next change of the table.
func (s *Source) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Build makes the table from slices: each ready endpoint (ready, hence not
// terminating) of each plumbline Service, named by its pod, at its address
// and the slice's port.
func Build(slices []*discoveryv1.EndpointSlice) Table {
	t := Table{}
	seen := map[string]map[string]bool{}
	for _, sl := range slices {
		ep, dep := sl.Labels[labelEndpoint], sl.Labels[labelDeployment]
		if ep == "" || dep == "" || len(sl.Ports) == 0 || sl.Ports[0].Port == nil {
			continue
		}
		if sl.AddressType != discoveryv1.AddressTypeIPv4 && sl.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		key := strings.ToLower(ep + "/" + dep)
		if seen[key] == nil {
			seen[key] = map[string]bool{}
		}
		port := strconv.Itoa(int(*sl.Ports[0].Port))
		for _, e := range sl.Endpoints {
			if e.Conditions.Ready == nil || !*e.Conditions.Ready || len(e.Addresses) == 0 {
				continue
			}
			name := e.Addresses[0]
			if e.TargetRef != nil && e.TargetRef.Name != "" {
				name = e.TargetRef.Name
			}
			if seen[key][name] { // a pod moving between slices shows in both for a moment
				continue
			}
			seen[key][name] = true
			t[key] = append(t[key], gateway.Instance{Name: name, Addr: net.JoinHostPort(e.Addresses[0], port)})
		}
	}
	for k := range t {
		sort.Slice(t[k], func(i, j int) bool { return t[k][i].Name < t[k][j].Name })
	}
	return t
}

// Fill returns a copy of snap in which every deployment's instances are the
// table's (none when the table has no ready pod for it). Endpoints, keys,
// traffic and the deployments' settings are snap's. snap is not modified.
func (t Table) Fill(snap *gateway.Snapshot) *gateway.Snapshot {
	out := &gateway.Snapshot{Endpoints: make(map[string]*gateway.Endpoint, len(snap.Endpoints))}
	for ek, e := range snap.Endpoints {
		ne := *e
		ne.Deployments = make(map[string]*gateway.Deployment, len(e.Deployments))
		for dk, d := range e.Deployments {
			nd := *d
			nd.Instances = t[strings.ToLower(e.Name+"/"+d.Name)]
			ne.Deployments[dk] = &nd
		}
		out.Endpoints[ek] = &ne
	}
	return out
}
