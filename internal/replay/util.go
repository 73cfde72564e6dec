package replay

import (
	"errors"

	"github.com/aws/smithy-go"

	"github.com/dispatcher-dev/dispatcher/internal/streams"
)

func isTrimmed(err error) bool { return errors.Is(err, streams.ErrTrimmed) }

// errCode keeps an AWS error's code, not its request ids, for reports.
func errCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode() + ": " + ae.ErrorMessage()
	}
	return err.Error()
}
