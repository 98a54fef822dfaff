package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// childEnv marks a process the benchmark started from its own executable
// (the engine double with -serve, a handler with -role handler). Such a
// child prints one line on stdout when it is ready, answers "stats" lines
// on stdin with its procSample as a JSON line, and exits when stdin closes.
const childEnv = "IIIBENCH_CHILD"

func isChild() bool { return os.Getenv(childEnv) != "" }

// child is a process started by startChild.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Reader
	mu     sync.Mutex // one stats exchange at a time
	waited bool
}

// startChild starts this executable with args and waits (up to 20 s) for
// its ready line, which it returns.
func startChild(args ...string) (*child, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, "", err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	c := &child{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	line, err := c.readLine(20 * time.Second)
	if err != nil {
		c.stop()
		return nil, "", fmt.Errorf("%s %s: %w", exe, strings.Join(args, " "), err)
	}
	return c, line, nil
}

// readLine reads a line, killing the child if none comes within d.
func (c *child) readLine(d time.Duration) (string, error) {
	t := time.AfterFunc(d, func() { _ = c.cmd.Process.Kill() })
	line, err := c.out.ReadString('\n')
	if !t.Stop() {
		return "", errors.New("no answer within " + d.String())
	}
	if err != nil {
		return "", fmt.Errorf("child exited: %w", err)
	}
	return strings.TrimSpace(line), nil
}

// stats asks the child for its procSample.
func (c *child) stats() (procSample, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var s procSample
	if _, err := io.WriteString(c.stdin, "stats\n"); err != nil {
		return s, err
	}
	line, err := c.readLine(10 * time.Second)
	if err != nil {
		return s, err
	}
	err = json.Unmarshal([]byte(line), &s)
	return s, err
}

// stop closes the child's stdin and waits for it to exit (killing it after
// 5 s).
func (c *child) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.waited {
		return
	}
	c.waited = true
	c.stdin.Close()
	t := time.AfterFunc(5*time.Second, func() { _ = c.cmd.Process.Kill() })
	defer t.Stop()
	_ = c.cmd.Wait()
}

// serveChild is the child's side: it prints ready, then answers stats
// lines until stdin closes, and then calls done.
func serveChild(ready string, done func()) {
	fmt.Println(ready)
	go func() {
		defer done()
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			if sc.Text() == "stats" {
				b, _ := json.Marshal(sampleSelf())
				fmt.Printf("%s\n", b)
			}
		}
	}()
}
