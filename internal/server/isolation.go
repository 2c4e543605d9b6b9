package server

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/plumbline/plumbline/internal/datadir"
	"github.com/plumbline/plumbline/internal/driver/process"
	"github.com/plumbline/plumbline/internal/registry"
)

// instanceIsolation decides who the process driver's instances run as.
// When the server runs as root, an unprivileged user (--instance-user,
// default plumbline-instance, created if missing) whose group may enter the
// data dir and its cache (0710) and nothing else: the CA key, admin token,
// secrets key, database, blobs and instance records stay root's alone.
// --instance-user root turns isolation off (with a warning). When the
// server does not run as root it cannot switch users: instances run as the
// server's user (docs/security.md says what that does not isolate).
func instanceIsolation(cfg Config, dd *datadir.Dir, reg *registry.Registry, log *slog.Logger) (*process.RunAs, error) {
	root := os.Geteuid() == 0
	switch {
	case cfg.InstanceUser == "root" && root:
		log.Warn("instances run as root (--instance-user root): scoring code can read the data dir's keys and database")
		return nil, nil
	case !root && cfg.InstanceUser != "":
		return nil, fmt.Errorf("--instance-user %s: running instances as another user needs a server running as root", cfg.InstanceUser)
	case !root:
		return nil, nil
	}
	ru, err := process.InstanceUser(cfg.InstanceUser, true)
	if err != nil {
		return nil, err
	}
	if err := dd.ShareWithGroup(int(ru.GID)); err != nil {
		return nil, err
	}
	if err := reg.ShareCache(int(ru.GID)); err != nil {
		return nil, fmt.Errorf("cache %s: %w", dd.CacheDir(), err)
	}
	if err := ru.CanEnter(dd.CacheDir()); err != nil {
		return nil, fmt.Errorf("instances run as user %s (the server runs as root), who cannot reach the data dir's cache, where their code and models are: %v. "+
			"Use a data dir that user can enter, such as %s (move this one there, then pass --data-dir %s), "+
			"or run instances as root, without isolation, with --instance-user root", ru.Name, err, datadir.SystemDir, datadir.SystemDir)
	}
	log.Info("instances run as an unprivileged user", "user", ru.Name, "uid", ru.UID, "gid", ru.GID)
	return ru, nil
}
