package process

import (
	"fmt"
	"os"
	"path/filepath"
)

// The lean R runtime's supervisor (`plumbline rworker`) needs a private
// folder of its own for its named pipes and control socket. It lives beside
// the instance folders, not in them: under isolation the supervisor runs as
// the instance user, who must not read the records and logs of the
// instance folders (root's, 0700), but must own its run folder.
//
//	<StateDir>/rworker/          0710, the instance user's group may enter
//	<StateDir>/rworker/<id>/     0700, owned by the instance's user

// RWorkerDir is the run folder of the lean R runtime instance id of a
// process driver whose state dir is stateDir (its control socket is found
// from there: rworker.ControlSocket).
func RWorkerDir(stateDir, id string) string {
	return filepath.Join(stateDir, "rworker", id)
}

// prepareRWorkerDir makes an empty run folder for instance id, owned by the
// user the instance runs as, and lets that user's group enter the folders
// above it.
func (d *Driver) prepareRWorkerDir(id string) (string, error) {
	dir := RWorkerDir(d.cfg.StateDir, id)
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("clear the lean runtime's folder: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create the lean runtime's folder: %w", err)
	}
	ru := d.cfg.RunAs
	if ru == nil {
		return dir, nil
	}
	// Group traversal only: the state dir's other entries keep their modes
	// (instances/ stays 0700, root's).
	for _, p := range []string{d.cfg.StateDir, filepath.Dir(dir)} {
		if err := os.Chown(p, -1, int(ru.GID)); err != nil {
			return "", fmt.Errorf("share %s with the instance user's group: %w", p, err)
		}
		if err := os.Chmod(p, 0o710); err != nil {
			return "", fmt.Errorf("share %s with the instance user's group: %w", p, err)
		}
	}
	if err := os.Chown(dir, int(ru.UID), int(ru.GID)); err != nil {
		return "", fmt.Errorf("give the lean runtime's folder to %s: %w", ru.Name, err)
	}
	return dir, nil
}

// removeRWorkerDir removes instance id's run folder, if any.
func (d *Driver) removeRWorkerDir(id string) error {
	return os.RemoveAll(RWorkerDir(d.cfg.StateDir, id))
}
