package reconnectingpty

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestInitWithoutResumeIsTheOriginalFrame pins that a client that does not
// resume sends exactly the keys of the original protocol.
func TestInitWithoutResumeIsTheOriginalFrame(t *testing.T) {
	t.Parallel()
	id := uuid.MustParse("3f0e6f9a-1c2d-4b5e-8f70-9a1b2c3d4e5f")
	var frame bytes.Buffer
	if err := WriteInit(&frame, Init{ID: id, Height: 24, Width: 80, Command: "bash --norc"}); err != nil {
		t.Fatal(err)
	}
	want := `{"ID":"3f0e6f9a-1c2d-4b5e-8f70-9a1b2c3d4e5f","Height":24,"Width":80,"Command":"bash --norc","Container":"","ContainerUser":"","BackendType":""}`
	if got := frame.String()[2:]; got != want {
		t.Fatalf("init JSON\n%s\nwant\n%s", got, want)
	}
}

func TestResumeFieldsRoundTrip(t *testing.T) {
	t.Parallel()
	in := Init{ID: uuid.New(), Height: 24, Width: 80, Resume: true, Offset: 1<<63 + 5}
	var frame bytes.Buffer
	if err := WriteInit(&frame, in); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(frame.String(), `"Resume":true,"Offset":9223372036854775813`) {
		t.Fatalf("frame %q lacks the resume keys", frame.String())
	}
	out, err := ReadInit(&frame)
	if err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Fatalf("read %+v, want %+v", out, in)
	}
}
