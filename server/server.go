package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/nodevms/nodevms/calllog"
	"github.com/nodevms/nodevms/core"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hyperdrive"
	"github.com/nodevms/nodevms/internal/folderlock"
	"github.com/nodevms/nodevms/sandbox"
)

// InUseError: another process serves the folder (it holds .dat/lock).
type InUseError struct {
	Dir string
	PID int
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("another nodevms (pid %d) is serving %s; stop it first", e.PID, e.Dir)
}

// ErrOtherBackend: the folder holds a backend deployed with another script,
// or with another memory mode than Options.Memory asks for.
var ErrOtherBackend = errors.New("server: the folder holds another backend")

// Memory modes (Options.Memory; see core.Config.MemoryAfresh).
const (
	MemoryKept   = "kept"
	MemoryAfresh = calllog.MemoryAfresh
)

// Options configure Open.
type Options struct {
	// Dir is the backend's folder, made if need be.
	Dir string
	// Code is the backend script: deployed into a folder that holds none,
	// and the one a deployed folder must hold.
	Code []byte
	// Title is the files archive's title, at deploy ("backend.js files"
	// if empty).
	Title string
	// Memory is MemoryKept or MemoryAfresh, recorded at deploy; a deployed
	// folder must have been deployed with it. Empty takes what the folder
	// was deployed with (MemoryKept for a deploy).
	Memory string
	// NoFsync answers a call before its log entry reaches the disk: a
	// crash of the process loses nothing, one of the machine may lose the
	// last calls.
	NoFsync bool
	// Limits, Quota, MaxEntry and QueueSize are the host's (core.Config).
	Limits    sandbox.Limits
	Quota     hyperdrive.Quota
	MaxEntry  int
	QueueSize int
	// Logger receives what the host says and the script's console.
	Logger *slog.Logger
}

// Backend is a deployed backend, open in its folder: the host that runs
// its calls and the stores it writes.
type Backend struct {
	Host    *core.Host
	Archive *hyperdrive.Archive
	Log     *hypercore.Feed
	// Deployed says that Open deployed the script (the folder held none).
	Deployed bool

	dir    string
	title  string
	folder *claimedFolder
}

// Open deploys opts.Code into opts.Dir, or opens the backend deployed
// there, and starts its host. See the package doc for what it checks and
// repairs first. A folder with damage is refused (core.ErrDamaged); a
// deploy that fails leaves the folder as it was.
func Open(ctx context.Context, opts Options) (*Backend, error) {
	if opts.Memory != "" && opts.Memory != MemoryKept && opts.Memory != MemoryAfresh {
		return nil, fmt.Errorf("server: memory %q is not %s or %s", opts.Memory, MemoryKept, MemoryAfresh)
	}
	if opts.Title == "" {
		opts.Title = "backend.js files"
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	folder, err := claimFolder(dir)
	if err != nil {
		return nil, err
	}
	b, err := open(ctx, folder, opts)
	if err != nil {
		folder.release()
		return nil, err
	}
	return b, nil
}

// open is Open once the folder is held.
func open(ctx context.Context, folder *claimedFolder, opts Options) (*Backend, error) {
	if folder.deployed {
		if err := checkArchiveFirst(folder.dir); err != nil {
			return nil, err
		}
	}
	archive, log, err := openStores(folder.dir, !folder.deployed, opts.NoFsync)
	if err != nil {
		return nil, err
	}
	closeStores := func() {
		log.Close()
		archive.Close()
	}
	cfg := core.Config{Archive: archive, Log: log, QueueSize: opts.QueueSize, Logger: opts.Logger, Limits: opts.Limits, Quota: opts.Quota,
		MaxEntry: opts.MaxEntry, MemoryAfresh: opts.Memory == MemoryAfresh, ArchiveChecked: folder.deployed}
	b := &Backend{Archive: archive, Log: log, dir: folder.dir, title: opts.Title, folder: folder}
	if folder.deployed {
		b.title, err = sameBackend(log, opts.Code, opts.Memory)
		if err == nil {
			b.Host, err = core.Open(ctx, cfg)
		}
		if err != nil {
			closeStores()
			return nil, err
		}
		return b, nil
	}
	b.Host, err = core.Deploy(ctx, cfg, string(opts.Code), opts.Title, nil)
	if err != nil {
		closeStores()
		if rerr := folder.undoDeploy(); rerr != nil {
			return nil, fmt.Errorf("deploy: %w (and removing what the deploy wrote failed: %v)", err, rerr)
		}
		return nil, fmt.Errorf("deploy: %w", err)
	}
	b.Deployed = true
	return b, nil
}

// sameBackend refuses a deployed folder whose init entry holds another
// script, or another memory mode than memory ("" takes the deployed one).
// It returns the backend's title.
func sameBackend(log *hypercore.Feed, code []byte, memory string) (string, error) {
	blk, err := log.Get(0)
	if err != nil {
		return "", fmt.Errorf("reading the call log's init entry: %w", err)
	}
	init, err := calllog.DecodeEntry(blk)
	if err != nil {
		return "", err
	}
	if !bytes.Equal([]byte(init.Code), code) {
		return "", fmt.Errorf("%w: this folder serves another script; deploy this one into a new folder (--dir)", ErrOtherBackend)
	}
	deployed := MemoryKept
	if init.Memory == calllog.MemoryAfresh {
		deployed = MemoryAfresh
	}
	if memory != "" && memory != deployed {
		return "", fmt.Errorf("%w: this backend was deployed with --memory %s, which its log records; --memory %s needs a new folder (--dir)", ErrOtherBackend, deployed, memory)
	}
	return init.Title, nil
}

// Dir is the backend's folder, as an absolute path.
func (b *Backend) Dir() string { return b.dir }

// Title is the files archive's title.
func (b *Backend) Title() string { return b.title }

// Close stops the host (queued calls are answered first), flushes and
// closes the stores, and lets go of the folder. What did not reach the
// disk is redone from the log at the next Open, or was never acknowledged.
func (b *Backend) Close() error {
	err := b.Host.Close()
	b.Log.Close()
	b.Archive.Close()
	b.folder.release()
	return err
}

// Check checks a stopped backend's folder and changes nothing in it: every
// signature and block of the call log and the files archive, every file
// against the archive, and the replay of every call (core.CheckFolder).
// Damage is core.ErrDamaged, or a divergence in the report's verdict. The
// call log is checked on a private copy of its files, which opening may
// bring up to its data file as a start would (a crash leaves the tree and
// bitfield behind the data).
func Check(ctx context.Context, dir string, limits sandbox.Limits) (core.FolderReport, error) {
	datDir := filepath.Join(dir, hyperdrive.DatDir)
	if _, err := os.Stat(filepath.Join(datDir, "call-log.key")); err != nil {
		return core.FolderReport{}, fmt.Errorf("%s holds no deployed backend (no %s)", dir, filepath.Join(hyperdrive.DatDir, "call-log.key"))
	}
	lock, err := folderlock.Probe(filepath.Join(datDir, "lock"))
	if err != nil {
		var held *folderlock.HeldError
		if errors.As(err, &held) {
			return core.FolderReport{}, fmt.Errorf("a nodevms is serving %s; audit it with nodevms -a, or stop it first", dir)
		}
		return core.FolderReport{}, err
	}
	defer lock.Release()

	logDir, err := os.MkdirTemp("", "nodevms-check-")
	if err != nil {
		return core.FolderReport{}, err
	}
	defer os.RemoveAll(logDir)
	for _, part := range []string{"key", "secret_key", "data", "tree", "signatures", "bitfield"} {
		if err := copyFile(filepath.Join(datDir, "call-log."+part), filepath.Join(logDir, "call-log."+part)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return core.FolderReport{}, err
		}
	}
	log, err := hypercore.Open(hypercore.Config{Storage: hypercore.DirStorage{Dir: logDir, Prefix: "call-log."}, LineLog: true})
	if err != nil {
		return core.FolderReport{}, damaged("the call log", err)
	}
	defer log.Close()
	archive, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.DatStorage(dir, filepath.Join(datDir, "secret_keys")), ReadOnly: true})
	if err != nil {
		return core.FolderReport{}, damaged("the files archive", err)
	}
	defer archive.Close()
	return core.CheckFolder(ctx, log, archive, core.ReplayOptions{Limits: limits})
}

// copyFile copies the file at from to a new file at to.
func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
