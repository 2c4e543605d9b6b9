package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/plumbline/plumbline/internal/auth"
	"github.com/plumbline/plumbline/internal/datadir"
	"github.com/plumbline/plumbline/internal/driver/kubernetes"
	"github.com/plumbline/plumbline/internal/store"
)

// KubernetesConfig configures serve --driver kubernetes.
type KubernetesConfig struct {
	// Kubeconfig is a kubeconfig file; "" means the in-cluster
	// configuration, else KUBECONFIG or ~/.kube/config.
	Kubeconfig string
	// Namespace holds the online deployments' objects. Required.
	Namespace string
	// FetchImage is the plumbline image the storage initializer runs.
	FetchImage string
	// FetchURL is this control plane's URL as pods reach it.
	FetchURL string
	// FetchCA is the CA certificate file pods trust for FetchURL; ""
	// means the data dir's local CA.
	FetchCA string
	// ImagePullPolicy of the pods' containers; "" means IfNotPresent.
	ImagePullPolicy string
	// ProgressDeadline of each Deployment; zero means 600 s.
	ProgressDeadline time.Duration
}

// fetchTokenLifetime bounds a storage initializer's token. Applying a
// deployment again (any update) mints a new one.
const fetchTokenLifetime = 90 * 24 * time.Hour

// fetchTokens issues the storage initializers' artifact tokens, with a key
// derived from the store's token secret: every control replica derives the
// same one.
func fetchTokens(secret []byte) (*auth.ArtifactTokens, error) {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("plumbline fetch tokens"))
	return auth.NewArtifactTokens(m.Sum(nil), nil)
}

// newKubernetesDriver connects the Kubernetes driver.
func newKubernetesDriver(ctx context.Context, cfg Config, dd *datadir.Dir, st store.Store, log *slog.Logger) (closingDriver, error) {
	k := cfg.Kubernetes
	if k.Namespace == "" {
		return nil, fmt.Errorf("--driver kubernetes needs --k8s-namespace: the namespace the online deployments go in")
	}
	owner, err := dd.ServerID()
	if err != nil {
		return nil, err
	}
	secret, err := tokenSecret(ctx, st)
	if err != nil {
		return nil, err
	}
	tokens, err := fetchTokens(secret)
	if err != nil {
		return nil, err
	}
	caFile := k.FetchCA
	if caFile == "" {
		caFile = dd.CACertPath()
	}
	var ca []byte
	if k.FetchURL != "" {
		if ca, err = os.ReadFile(caFile); err != nil {
			return nil, fmt.Errorf("--k8s-fetch-ca: %w", err)
		}
	}
	drv, err := kubernetes.New(ctx, kubernetes.Config{
		Kubeconfig: k.Kubeconfig, Namespace: k.Namespace, Owner: owner,
		FetchImage: k.FetchImage, FetchServer: k.FetchURL, FetchCA: ca,
		Token: func(_ context.Context, endpoint, deployment string, digests []string) (string, error) {
			return tokens.Issue(endpoint+"/"+deployment, digests, fetchTokenLifetime)
		},
		ImagePullPolicy:  corev1.PullPolicy(k.ImagePullPolicy),
		ProgressDeadline: k.ProgressDeadline,
		Logger:           log.With("component", "driver"),
	})
	if err != nil {
		return nil, err
	}
	log.Info("kubernetes driver", "namespace", k.Namespace, "owner", owner, "fetch_url", k.FetchURL)
	return drv, nil
}
