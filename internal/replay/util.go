package replay

import (
	"bytes"
	"errors"

	"github.com/dispatcher-dev/dispatcher/internal/streams"
)

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

func isTrimmed(err error) bool { return errors.Is(err, streams.ErrTrimmed) }
