package reconnectingpty

import (
	"io"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestQueueSizeIsPerConnection: a connection served with a small
// ConnOptions.QueueSize that stops reading is cut off at its own bound,
// while the server's default (4 MiB) would have kept it, and a reader of
// the same session gets every byte.
func TestQueueSizeIsPerConnection(t *testing.T) {
	t.Parallel()
	for _, backend := range []BackendType{BackendBuffered, BackendVT} {
		t.Run(string(backend), func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, backend, Config{})
			id := uuid.New()
			reader := ts.connect(Init{ID: id, Command: testShell})
			reader.typeLine(`echo ready-""now`)
			reader.expect("ready-now")

			stalled, server := net.Pipe()
			defer stalled.Close()
			ts.wg.Add(1)
			go func() {
				defer ts.wg.Done()
				if err := ts.srv.ServeConnWith(t.Context(), server, ConnOptions{QueueSize: MinConnQueueSize}); err != nil {
					t.Errorf("ServeConnWith: %v", err)
				}
			}()
			if err := WriteInit(stalled, Init{ID: id, Height: 24, Width: 80, BackendType: string(backend)}); err != nil {
				t.Fatal(err)
			}
			// About 1.3 MB: far past the small queue, well within the default.
			reader.typeLine(`seq 1 200000; echo "flood-""done"`)
			reader.waitFor("all output", longWait, func(out string, _ bool) bool {
				return strings.Contains(out, "\n200000") && strings.Contains(out, "flood-done")
			})
			closes := ts.waitForCloses(1)
			requireClose(t, closes[0], DisconnectSlowConsumer)
			if d, _ := closes[0]["disconnect_detail"].(string); !strings.Contains(d, strconv.Itoa(MinConnQueueSize)) {
				t.Errorf("detail %q does not name the connection's own bound %d", d, MinConnQueueSize)
			}
		})
	}
}

// TestQueueSizeBelowTheMinimumIsRefused: invalid options are the caller's
// mistake, reported to the caller (ServeConnWith) or logged as an error
// (Config.ConnOptions), and the connection is not served.
func TestQueueSizeBelowTheMinimumIsRefused(t *testing.T) {
	t.Parallel()
	t.Run("ServeConnWith", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, BackendBuffered, Config{})
		client, server := net.Pipe()
		defer client.Close()
		err := ts.srv.ServeConnWith(t.Context(), server, ConnOptions{QueueSize: 1000})
		if err == nil || !strings.Contains(err.Error(), "queue size 1000") {
			t.Fatalf("ServeConnWith with a 1000-byte queue = %v, want an error naming it", err)
		}
		if _, err := client.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("the refused connection reads %v, want EOF: it must be closed", err)
		}
	})
	t.Run("hook", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, BackendBuffered, Config{ConnOptions: func(Init, net.Conn) ConnOptions {
			return ConnOptions{QueueSize: -1}
		}})
		c := ts.connect(Init{ID: uuid.New(), Command: testShell})
		c.expectEOF()
		requireClose(t, ts.waitForCloses(1)[0], DisconnectStartFailed)
	})
}
