// Command dispatcher-local runs Dispatcher's local AWS for a person:
//
//	dispatcher-local emulators up [-detach] [-no-provision]
//	dispatcher-local emulators down
//	dispatcher-local provision [-stack NAME] [-param Key=Value ...]
//	dispatcher-local dev [-port 3000] [-endpoint URL] [-binary] [...]
//	dispatcher-local replay ['{"mode":"all"}']
//
// `emulators up` starts DynamoDB Local, fauxqs and aws-ses-v2-local on
// loopback (ports from DISPATCHER_DYNAMODB_PORT, DISPATCHER_SQS_PORT,
// DISPATCHER_SES_PORT; defaults 8000, 9324, 8005), provisions
// infra/template.yaml into them and prints the variables that point the AWS
// SDK and CLI at them. `provision` applies the template to whatever the
// AWS_ENDPOINT_URL* variables point at (LocalStack, for instance).
//
// `dev` runs the whole flow in the foreground: emulators, resources, the
// API Gateway emulation on 127.0.0.1:3000 and the DynamoDB Streams event
// source mapping (internal/local/runner), until Ctrl-C. `replay` asks a running
// `dev` to invoke the replay function (or runs it once). See docs/local.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/dispatcher-dev/dispatcher/internal/local/emulator"
	"github.com/dispatcher-dev/dispatcher/internal/local/provision"
)

const usage = `usage:
  dispatcher-local emulators up [-detach] [-no-provision] [-stack NAME]
  dispatcher-local emulators down
  dispatcher-local provision [-stack NAME] [-template PATH] [-param Key=Value ...]
  dispatcher-local dev [-port 3000] [-endpoint URL] [-binary] [-poll 250ms] [-stack NAME] [-schedules=false]
                       [-dynamodb-port 8000] [-sqs-port 9324] [-ses-port 8005]
  dispatcher-local replay [-api http://127.0.0.1:3000] ['{"mode":"all"}']`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "dispatcher-local:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	switch {
	case len(args) >= 2 && args[0] == "emulators" && args[1] == "up":
		return emulatorsUp(ctx, args[2:])
	case len(args) >= 2 && args[0] == "emulators" && args[1] == "down":
		return emulatorsDown()
	case len(args) >= 1 && args[0] == "provision":
		return provisionCmd(ctx, args[1:])
	case len(args) >= 1 && args[0] == "dev":
		defer takeTerminal()()
		return devCmd(ctx, args[1:])
	case len(args) >= 1 && args[0] == "replay":
		return replayCmd(ctx, args[1:])
	}
	return errors.New(usage)
}

// state is what `emulators up -detach` leaves for `emulators down`.
type state struct {
	LogDir    string            `json:"logDir"`
	PIDs      []int             `json:"pids"`
	Endpoints map[string]string `json:"endpoints"`
}

func statePath() (string, error) {
	dir, err := emulator.FindDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(dir), ".local", "emulators.json"), nil
}

func portFromEnv(name string, def int) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	p, err := strconv.Atoi(v)
	if err != nil || p < 0 || p > 65535 {
		return 0, fmt.Errorf("%s=%q is not a port number", name, v)
	}
	return p, nil
}

func emulatorsUp(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("emulators up", flag.ContinueOnError)
	detach := fs.Bool("detach", false, "leave the emulators running in the background")
	noProvision := fs.Bool("no-provision", false, "do not create the template's resources")
	stack := fs.String("stack", "dispatcher-local", "stack name for resource names")
	if err := fs.Parse(args); err != nil {
		return err
	}
	sp, err := statePath()
	if err != nil {
		return err
	}
	if _, err := os.Stat(sp); err == nil {
		return fmt.Errorf("emulators already started (see %s): run `make emulators-down` first", sp)
	}
	ports := map[emulator.Name]int{}
	for _, p := range []struct {
		n   emulator.Name
		env string
		def int
	}{{emulator.DynamoDB, "DISPATCHER_DYNAMODB_PORT", 8000}, {emulator.SQS, "DISPATCHER_SQS_PORT", 9324}, {emulator.SES, "DISPATCHER_SES_PORT", 8005}} {
		if ports[p.n], err = portFromEnv(p.env, p.def); err != nil {
			return err
		}
	}
	logDir := filepath.Join(filepath.Dir(sp), "emulator-logs")
	s, err := emulator.Start(ctx, emulator.Options{Ports: ports, LogDir: logDir, Detach: *detach})
	if err != nil {
		return err
	}
	endpoints := s.Endpoints()
	for k, v := range endpoints {
		os.Setenv(k, v)
	}
	if !*noProvision {
		if err := provisionAndPrint(ctx, *stack, "", nil); err != nil {
			s.Stop()
			return err
		}
	}
	fmt.Println("\nEmulators (logs in " + logDir + "):")
	for _, p := range s.Processes() {
		fmt.Printf("  %-17s %s  pid %d\n", p.Name, p.URL, p.PID)
	}
	for _, p := range s.Processes() {
		if p.Warning != "" {
			fmt.Println("WARN: " + p.Warning)
		}
	}
	fmt.Printf("  SES sent mail:    %s/  (JSON: %s/store)\n", s.Get(emulator.SES).URL, s.Get(emulator.SES).URL)
	fmt.Println("\nPoint the AWS SDK or CLI at them:")
	keys := make([]string, 0, len(endpoints))
	for k := range endpoints {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("  export %s=%s\n", k, endpoints[k])
	}
	if *detach {
		var pids []int
		for _, p := range s.Processes() {
			pids = append(pids, p.PID)
		}
		b, _ := json.MarshalIndent(state{LogDir: logDir, PIDs: pids, Endpoints: endpoints}, "", "  ")
		if err := os.WriteFile(sp, b, 0o644); err != nil {
			s.Stop()
			return err
		}
		fmt.Println("\nRunning in the background; stop them with `make emulators-down`.")
		return nil
	}
	fmt.Println("\nRunning; Ctrl-C stops them.")
	<-ctx.Done()
	s.Stop()
	fmt.Println("stopped")
	return nil
}

func emulatorsDown() error {
	sp, err := statePath()
	if err != nil {
		return err
	}
	b, err := os.ReadFile(sp)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Println("no emulators were started with `make emulators-up`")
		return nil
	}
	if err != nil {
		return err
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("%s: %w", sp, err)
	}
	emulator.StopPIDs(st.PIDs)
	for _, pid := range st.PIDs {
		if emulator.Alive(pid) {
			return fmt.Errorf("emulator pid %d did not stop", pid)
		}
	}
	fmt.Printf("stopped %d emulators\n", len(st.PIDs))
	return os.Remove(sp)
}

type params map[string]string

func (p params) String() string { return fmt.Sprint(map[string]string(p)) }
func (p params) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want Key=Value, got %q", v)
	}
	p[k] = val
	return nil
}

func provisionCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("provision", flag.ContinueOnError)
	stack := fs.String("stack", "dispatcher-local", "stack name for resource names")
	tmpl := fs.String("template", "", "template path (default: infra/template.yaml of this repository)")
	ps := params{}
	fs.Var(ps, "param", "template parameter Key=Value (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return provisionAndPrint(ctx, *stack, *tmpl, ps)
}

func provisionAndPrint(ctx context.Context, stack, tmpl string, ps map[string]string) error {
	if tmpl == "" {
		dir, err := emulator.FindDir()
		if err != nil {
			return err
		}
		tmpl = filepath.Join(filepath.Dir(dir), "infra", "template.yaml")
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return err
	}
	s, err := provision.Apply(ctx, cfg, provision.Options{TemplatePath: tmpl, StackName: stack, Parameters: ps})
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(s.Resources))
	for id := range s.Resources {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	fmt.Printf("Provisioned %s into stack %q:\n", tmpl, stack)
	for _, id := range ids {
		r := s.Resources[id]
		fmt.Printf("  %-30s %-26s %s\n", id, r.Type, r.PhysicalID)
	}
	if notes := s.Notes(); len(notes) > 0 {
		fmt.Println("Not applied by this endpoint:")
		for _, n := range notes {
			fmt.Println("  " + n)
		}
	}
	return nil
}
