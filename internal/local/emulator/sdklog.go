package emulator

import (
	"fmt"
	"os"
	"strings"

	"github.com/aws/smithy-go/logging"
)

// QuietSDKLogger is an AWS SDK logger for clients of the emulators: it
// drops the checksum warning that DynamoDB Local provokes on some responses
// (harmless; see README) and writes the rest to stderr.
type QuietSDKLogger struct{}

// Logf implements logging.Logger.
func (QuietSDKLogger) Logf(c logging.Classification, format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.Contains(msg, "response did not match expected checksum") {
		return
	}
	fmt.Fprintf(os.Stderr, "SDK %s %s\n", c, msg)
}
