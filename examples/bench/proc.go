package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/xerrors"
)

// Every process a contender starts carries an environment variable naming
// its host (tagEnv=<run>-<host>): the server's session programs, tmux's
// server, screen's and dtach's daemons, which leave the bench's process
// tree when they daemonize, and their programs. /proc/PID/environ then
// finds them all, for CPU and memory accounting and to leave nothing
// behind.
const tagEnv = "RPTYBENCH_HOST"

// clockTicks is USER_HZ, the unit of /proc/PID/stat times; it is 100 on
// every Linux architecture the bench runs on.
const clockTicks = 100

// newRunID returns a random identifier for one run of the bench.
func newRunID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// tagged lists the processes whose environment holds tag exactly
// ("NAME=value"), or, with prefix set, any value starting with tag; zombies
// only if asked. The bench's own process is never listed.
func tagged(tag string, prefix, zombies bool) []int {
	ents, _ := os.ReadDir("/proc")
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !hasEnv(env, tag, prefix) {
			continue
		}
		if st, err := readStat(pid); err == nil && (zombies || st.state != "Z") {
			pids = append(pids, pid)
		}
	}
	return pids
}

func hasEnv(environ []byte, tag string, prefix bool) bool {
	for _, kv := range bytes.Split(environ, []byte{0}) {
		if string(kv) == tag || prefix && bytes.HasPrefix(kv, []byte(tag)) {
			return true
		}
	}
	return false
}

// procStat is what the bench uses of /proc/PID/stat.
type procStat struct {
	state string
	// ticks is utime+stime+cutime+cstime: the process's CPU and that of
	// its children it has reaped.
	ticks uint64
	// ownTicks is utime+stime: the process's own CPU alone.
	ownTicks uint64
}

func readStat(pid int) (procStat, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	// The command name may hold spaces and parentheses: the fields
	// start after the last ")".
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return procStat{}, xerrors.Errorf("parse /proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 15 {
		return procStat{}, xerrors.Errorf("parse /proc/%d/stat: %d fields", pid, len(f))
	}
	st := procStat{state: f[0]}
	// Fields 14 to 17 of stat(5): utime stime cutime cstime.
	for k, s := range f[11:15] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return procStat{}, xerrors.Errorf("parse /proc/%d/stat: %w", pid, err)
		}
		st.ticks += v
		if k < 2 {
			st.ownTicks += v
		}
	}
	return st, nil
}

// cpuSeconds is the CPU time (user+sys) used so far by the bench's own
// process with its reaped children (the reading
// clients, tmux/screen/dtach clients) plus every live process carrying
// tag with the children they reaped. A process that exits between two
// samples is counted through whoever reaps it: the bench, or a tagged
// daemon. Only a process reaped by init would be lost, and none is while
// a measurement runs: the daemons outlive it.
//
// Scanning /proc costs the bench some CPU; at the start of an interval
// (selfLast) the bench's own time is read after the scan and at the end
// before it, so that the scans stay out of the interval.
func cpuSeconds(tag string, selfLast bool) cpuSample {
	var c cpuSample
	if !selfLast {
		c.all += selfCPU()
	}
	// A zombie's time is not yet in its parent's: count it until reaped.
	for _, pid := range tagged(tag, false, true) {
		st, err := readStat(pid)
		if err != nil {
			continue
		}
		secs := float64(st.ticks) / clockTicks
		c.all += secs
		if isProgram(pid) {
			c.programs += secs
		} else {
			// The relay's own time: a daemon's reaped session programs
			// (cutime) are the programs' work, not the relay's.
			c.relay += float64(st.ownTicks) / clockTicks
		}
	}
	if selfLast {
		c.all += selfCPU()
	}
	return c
}

// cpuSample is CPU seconds used so far: by everything, by the session
// programs (the bench's own binary, run as the writer) among them, and by
// the contender's own live processes (the relay: the library's daemon,
// tmux's server and clients, screen's daemon and clients, dtach's master
// and attach), each without the children it reaped.
type cpuSample struct{ all, programs, relay float64 }

func (c cpuSample) sub(d cpuSample) cpuSample {
	return cpuSample{c.all - d.all, c.programs - d.programs, c.relay - d.relay}
}

// isProgram reports whether pid is one of the session programs: the
// bench's own binary run as a child program other than the daemon.
func isProgram(pid int) bool {
	exe, err := os.Executable()
	if err != nil {
		return false
	}
	if e, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); err != nil || e != exe {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	args := strings.Split(string(cmdline), "\x00")
	return !(len(args) > 2 && args[1] == childArg && args[2] == "daemon")
}

// selfCPU is the bench's CPU time with that of its reaped children.
func selfCPU() float64 {
	var total float64
	for _, who := range []int{unix.RUSAGE_SELF, unix.RUSAGE_CHILDREN} {
		var ru unix.Rusage
		if err := unix.Getrusage(who, &ru); err == nil {
			total += tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
		}
	}
	return total
}

func tvSeconds(tv unix.Timeval) float64 {
	return float64(tv.Sec) + float64(tv.Usec)/1e6
}

// memKiB is the resident and proportional set size of a process, from
// /proc/PID/smaps_rollup, in KiB.
func memKiB(pid int) (rss, pss int64, err error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		name, v, ok := strings.Cut(line, ":")
		if !ok || name != "Rss" && name != "Pss" {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		if err != nil {
			return 0, 0, xerrors.Errorf("parse %s of /proc/%d/smaps_rollup: %w", name, pid, err)
		}
		if name == "Rss" {
			rss = kb
		} else {
			pss = kb
		}
	}
	return rss, pss, nil
}

// contenderMemKiB sums RSS and PSS over the processes of tag that belong
// to the contender itself (the library's daemon included): the session
// programs, the same for every contender, are left out.
func contenderMemKiB(tag string) (rss, pss int64, procs int, err error) {
	for _, pid := range tagged(tag, false, false) {
		if isProgram(pid) {
			continue
		}
		r, p, err := memKiB(pid)
		if err != nil {
			continue // exited meanwhile
		}
		rss += r
		pss += p
		procs++
	}
	return rss, pss, procs, nil
}

// killTagged kills every process carrying tag and waits until none is
// left alive, so that a host leaves nothing behind.
func killTagged(tag string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pids := tagged(tag, false, false)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return xerrors.Errorf("processes %v of %s still alive after %s", pids, tag, timeout)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
