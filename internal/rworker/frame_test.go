package rworker

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAppendRequest(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/echo/a%20b?q=%20x&flag", strings.NewReader("body"))
	r.RemoteAddr = "10.0.0.7:5555"
	r.Header = http.Header{"Content-Type": {"application/json"}, "Cookie": {"a=1", "b=2"}, "X-Many": {"1", "2"}, "X-Empty": {""}}
	r.TransferEncoding = []string{"chunked"}
	frame := appendRequest([]byte("prefix"), headOf(r, "127.0.0.1", "8000"), []byte("body"))
	if !bytes.HasPrefix(frame, []byte("prefix")) {
		t.Fatalf("the frame does not append to its buffer")
	}
	frame = frame[len("prefix"):]
	headLen := binary.LittleEndian.Uint32(frame)
	bodyLen := binary.LittleEndian.Uint32(frame[4:])
	head := string(frame[8 : 8+headLen])
	if got := string(frame[8+headLen:]); got != "body" || bodyLen != 4 {
		t.Fatalf("body %q (length %d), want body", got, bodyLen)
	}
	lines := strings.Split(head, "\n")
	if lines[len(lines)-1] != "" || lines[len(lines)-2] != "." {
		t.Fatalf("head does not end with the end mark: %q", head)
	}
	fixed := lines[:7]
	if diff := cmp.Diff([]string{"POST", "/echo/a%20b", "q=%20x&flag", "10.0.0.7", "5555", "127.0.0.1", "8000"}, fixed); diff != "" {
		t.Errorf("fixed lines (-want +got):\n%s", diff)
	}
	headers := map[string]string{}
	pairs := lines[7 : len(lines)-2]
	if len(pairs)%2 != 0 {
		t.Fatalf("header lines do not pair up: %q", pairs)
	}
	for i := 0; i < len(pairs); i += 2 {
		headers[pairs[i]] = pairs[i+1]
	}
	want := map[string]string{"host": "example.com", "content-type": "application/json", "cookie": "a=1; b=2",
		"x-many": "1, 2", "x-empty": "", "transfer-encoding": "chunked"}
	if diff := cmp.Diff(want, headers); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
}

func responseFrame(status uint32, head string, body string) []byte {
	var b []byte
	b = binary.LittleEndian.AppendUint32(b, status)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(head)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(body)))
	return append(append(b, head...), body...)
}

func TestReadResponse(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    response
		wantErr error
	}{
		{"headers and body", responseFrame(201, "Content-Type\napplication/json\nSet-Cookie\na=1\nSet-Cookie\nb=2\n", `{"ok":1}`),
			response{Status: 201, Header: [][2]string{{"Content-Type", "application/json"}, {"Set-Cookie", "a=1"}, {"Set-Cookie", "b=2"}}, Body: []byte(`{"ok":1}`)}, nil},
		{"empty", responseFrame(204, "", ""), response{Status: 204, Body: []byte{}}, nil},
		{"nothing", nil, response{}, io.EOF},
		{"cut in the head", responseFrame(200, "A\nb\n", "xyz")[:14], response{}, io.ErrUnexpectedEOF},
		{"cut in the body", responseFrame(200, "", "xyz")[:13], response{}, io.ErrUnexpectedEOF},
		{"unpaired header", responseFrame(200, "A\n", ""), response{}, errFrame},
		{"body past the bound (8 bytes)", responseFrame(200, "", "0123456789"), response{}, errFrame},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readResponse(bufio.NewReader(bytes.NewReader(tc.in)), 8)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadHello(t *testing.T) {
	pid, err := readHello(bufio.NewReader(bytes.NewReader(responseFrame(0, "", "")[:8:8])))
	if err == nil {
		t.Fatalf("a short hello gave pid %d", pid)
	}
	var b []byte
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint32(b, 4242)
	b = binary.LittleEndian.AppendUint32(b, 0)
	if pid, err := readHello(bufio.NewReader(bytes.NewReader(b))); err != nil || pid != 4242 {
		t.Fatalf("hello: %d, %v; want 4242", pid, err)
	}
	if _, err := readHello(bufio.NewReader(bytes.NewReader(responseFrame(200, "", "")))); !errors.Is(err, errFrame) {
		t.Fatalf("a response as hello: %v, want errFrame", err)
	}
}

// FuzzReadResponse: whatever a worker writes, reading it never panics and
// never allocates past the bounds.
func FuzzReadResponse(f *testing.F) {
	f.Add(responseFrame(200, "A\nb\n", "body"))
	f.Add(responseFrame(0xffffffff, "", ""))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, in []byte) {
		res, err := readResponse(bufio.NewReader(bytes.NewReader(in)), 1<<16)
		if err == nil && len(res.Body) > 1<<16 {
			t.Fatalf("body of %d bytes past the bound", len(res.Body))
		}
	})
}

func TestProcsFor(t *testing.T) {
	for _, c := range []struct{ workers, cpus, want int }{
		{0, 2, 1}, {1, 2, 1}, {8, 2, 1}, {9, 2, 2}, {32, 2, 2}, {32, 16, 4}, {1, 1, 1},
	} {
		if got := procsFor(c.workers, c.cpus); got != c.want {
			t.Errorf("procsFor(%d workers, %d cpus) = %d, want %d", c.workers, c.cpus, got, c.want)
		}
	}
}

func TestStatmRSS(t *testing.T) {
	if got, want := statmRSS([]byte("25000 1200 800 10 0 300 0\n")), int64(1200*os.Getpagesize()); got != want {
		t.Errorf("statmRSS = %d, want %d", got, want)
	}
	if got := statmRSS([]byte("")); got != 0 {
		t.Errorf("statmRSS of nothing = %d, want 0", got)
	}
}
