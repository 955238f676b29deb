package rpc

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestDialStatusError: a server that answers the WebSocket upgrade with a
// status gives a *StatusError that says so, with the first line of the
// body for error statuses (where a backend says why it refused).
func TestDialStatusError(t *testing.T) {
	long := strings.Repeat("x", 300)
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    StatusError // URL filled in below
		wantMsg string      // after "rpc: URL: "
	}{
		{
			name:    "200 OK to everything",
			handler: func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>hello</html>")) },
			want:    StatusError{StatusCode: 200, Status: "200 OK"},
			wantMsg: "the server answered the WebSocket upgrade with 200 OK",
		},
		{
			name:    "a redirect",
			handler: func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) },
			want:    StatusError{StatusCode: 302, Status: "302 Found"},
			wantMsg: "the server answered the WebSocket upgrade with 302 Found",
		},
		{
			name: "a refusal that says why",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "the server is at its connection limit (1); try again later\nmore", http.StatusServiceUnavailable)
			},
			want: StatusError{StatusCode: 503, Status: "503 Service Unavailable",
				Body: "the server is at its connection limit (1); try again later"},
			wantMsg: "the server answered the WebSocket upgrade with 503 Service Unavailable: the server is at its connection limit (1); try again later",
		},
		{
			name:    "a long body, cut short",
			handler: func(w http.ResponseWriter, r *http.Request) { http.Error(w, long, http.StatusNotFound) },
			want:    StatusError{StatusCode: 404, Status: "404 Not Found", Body: long[:200] + "..."},
			wantMsg: "the server answered the WebSocket upgrade with 404 Not Found: " + long[:200] + "...",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := httptest.NewServer(tt.handler)
			defer ts.Close()
			_, err := Dial(context.Background(), ts.URL, ClientOptions{})
			var got *StatusError
			if !errors.As(err, &got) {
				t.Fatalf("Dial: %v, want a *StatusError", err)
			}
			want := tt.want
			want.URL = BackendURL(ts.URL)
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Errorf("StatusError (-want +got):\n%s", diff)
			}
			if msg := "rpc: " + want.URL + ": " + tt.wantMsg; got.Error() != msg {
				t.Errorf("StatusError.Error() = %q, want %q", got.Error(), msg)
			}
			// Under 400 the server is no backend at all, and Dial says so.
			msg := got.Error()
			if got.StatusCode < 400 {
				msg = ts.URL + " is not a NodeVMS server (it answered the WebSocket upgrade with " + got.Status + ")"
			}
			if err.Error() != msg {
				t.Errorf("Error() = %q, want %q", err.Error(), msg)
			}
		})
	}
}
