// Package plumber knows R and plumber as the process driver needs them: the
// launcher that replaces the seed's start_plumber.R, and the static checks
// that tell a user, before anything starts, which R packages their scoring
// script or Dockerfile needs and how to install the missing ones, and what
// in a script only plumber's own server can serve (LeanBlockers).
//
// It owns R source and Dockerfile scanning, the launcher's R code, and the
// one Rscript call that asks an R installation what it lacks. It starts no
// long-running process itself: running the launcher is the process driver's
// job.
//
// This package must not import the driver packages, the store, the registry,
// the gateway, the reconciler or the API server; they import it.
package plumber
