package emulator

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// Preflight checks that Java and Node.js are present and recent enough and
// that the emulators are installed, so a missing piece is one clear sentence
// instead of a stack trace from a child process.
func Preflight(ctx context.Context, dir string) error {
	if err := checkTool(ctx, "java", MinJava, "DynamoDB Local"); err != nil {
		return err
	}
	if err := checkTool(ctx, "node", MinNode, "the SQS and SES emulators"); err != nil {
		return err
	}
	for _, f := range []string{
		filepath.Join("node_modules", "amplify-dynamodb-simulator", "emulator", "DynamoDBLocal.jar"),
		filepath.Join("node_modules", "fauxqs", "package.json"),
		filepath.Join("node_modules", "aws-ses-v2-local", "dist", "cli.js"),
		"sqs-loopback.mjs",
	} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return &SetupError{Msg: fmt.Sprintf("the local emulators are not installed (%s is missing): run `make emulators-install` (npm ci in localstack/)", filepath.Join(dir, f))}
		}
	}
	return nil
}

var versionRe = map[string]*regexp.Regexp{
	// openjdk version "17.0.15" / java version "1.8.0_392" / openjdk 21 ...
	"java": regexp.MustCompile(`(?:version "|openjdk )(1\.)?(\d+)`),
	"node": regexp.MustCompile(`^v(\d+)\.`),
}

func checkTool(ctx context.Context, tool string, minMajor int, forWhat string) error {
	path, err := exec.LookPath(tool)
	if err != nil {
		return &SetupError{Msg: fmt.Sprintf("%s is not installed or not on PATH: %s needs %s %d or newer", tool, forWhat, displayName(tool), minMajor)}
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	arg := "--version"
	if tool == "java" {
		arg = "-version"
	}
	out, err := exec.CommandContext(ctx, path, arg).CombinedOutput()
	if err != nil {
		return &SetupError{Msg: fmt.Sprintf("%s %s failed (%v): %s needs a working %s %d or newer", path, arg, err, forWhat, displayName(tool), minMajor)}
	}
	m := versionRe[tool].FindSubmatch(out)
	if m == nil {
		return &SetupError{Msg: fmt.Sprintf("cannot read the version of %s from %q", path, out)}
	}
	major, _ := strconv.Atoi(string(m[len(m)-1]))
	if major < minMajor {
		return &SetupError{Msg: fmt.Sprintf("%s is version %d: %s needs %s %d or newer", path, major, forWhat, displayName(tool), minMajor)}
	}
	return nil
}

func displayName(tool string) string {
	if tool == "node" {
		return "Node.js"
	}
	return "Java"
}
