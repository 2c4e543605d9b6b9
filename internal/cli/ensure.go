package cli

import (
	"context"
	"encoding/json"
	"time"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/spec"
)

// The create-or-update logic that `apply` and `up` share.

// ensureEndpoint creates ep, or updates it when it exists, keeping its live
// traffic when ep says nothing about traffic. created says which.
func (cn *conn) ensureEndpoint(ctx context.Context, ep *spec.Endpoint) (created bool, err error) {
	cur, err := cn.api.GetEndpoint(ctx, ep.Name)
	switch {
	case api.IsNotFound(err):
		doc, err := json.Marshal(ep)
		if err != nil {
			return false, err
		}
		if _, err := cn.api.CreateEndpoint(ctx, doc); err != nil {
			return false, describe(err)
		}
		return true, nil
	case err != nil:
		return false, describe(err)
	}
	keepLiveTraffic(ep, cur)
	doc, err := json.Marshal(ep)
	if err != nil {
		return false, err
	}
	if _, err := cn.api.UpdateEndpoint(ctx, ep.Name, doc); err != nil {
		return false, describe(err)
	}
	return false, nil
}

// ensureDeployment uploads d's local paths, creates d or updates it when it
// exists, and unless noWait waits until it is Succeeded or Failed (printing
// its events with times since start). announce, if set, is told which of
// create or update is about to happen.
func (cn *conn) ensureDeployment(ctx context.Context, g *globals, d *spec.Deployment, start time.Time, noWait bool, announce func(exists bool)) (created bool, err error) {
	doc, err := cn.deploymentDocument(ctx, g, d)
	if err != nil {
		return false, err
	}
	mark := cn.eventMark(ctx, d.EndpointName)
	_, err = cn.api.GetDeployment(ctx, d.EndpointName, d.Name)
	exists := err == nil
	if err != nil && !api.IsNotFound(err) {
		return false, describe(err)
	}
	if announce != nil {
		announce(exists)
	}
	var out *api.Deployment
	if exists {
		out, err = cn.api.UpdateDeployment(ctx, d.EndpointName, d.Name, doc)
	} else {
		out, err = cn.api.CreateDeployment(ctx, d.EndpointName, doc)
	}
	if err != nil {
		return false, describe(err)
	}
	if !noWait && out.ProvisioningState != api.StateSucceeded {
		if _, err := cn.waitDeployment(ctx, g, d.EndpointName, d.Name, start, mark); err != nil {
			return false, err
		}
	}
	return !exists, nil
}
