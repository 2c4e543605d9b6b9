// Package process is the embedded default driver: it runs each instance as a
// local child process, the way Nomad's raw_exec runs a task.
//
// It owns everything about those processes: the command line (a generic
// server's argv, Rscript with the launcher from package plumber, or, for
// the lean R runtime, `plumbline rworker` from package rworker), the
// environment of the container contract, a free port per instance, one
// process group per instance so that Stop and Recover reach every process
// the server started, the instance's log files and their rotation, and a
// small JSON record per instance that lets the next run of plumbline find
// and end what a crashed run left behind.
//
// Layout of Config.StateDir:
//
//	lock                       flock held by the running driver
//	instances/<id>/record.json pid, pgid, start time, port, spec summary
//	instances/<id>/output.log  stdout and stderr, O_APPEND
//	instances/<id>/output.log.1 … .N rotated copies, .1 the newest
//
// The driver works on Linux, where /proc lets it tell a process from a
// later one that reuses its PID. Other Unix systems compile, with a Recover
// that trusts the PID and process group alone.
//
// This package must not import the store, the registry, the gateway, the
// reconciler or the API server; it imports only driver, plumber and rworker.
package process
