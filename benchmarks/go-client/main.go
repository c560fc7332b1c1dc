// The plugin client as dockerd has it (moby's pkg/plugins: net/http over the plugin's Unix socket,
// kept-alive connections, a JSON body out and a JSON answer decoded), timing each request one
// after another. The benchmark builds it with the standard library only (benchmarks/latency.mjs)
// and runs it against loopvol and against an empty server, so both see the same client.
//
//	latency-client -socket S -volumes N -requests R [-warmup W] [-methods A,B]
//
// Prints {"<method>": [milliseconds...], ...} on stdout: the measured requests, warm-up left out.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// dockerd's Accept header for plugin requests (moby pkg/plugins, versionMimetype).
const accept = "application/vnd.docker.plugins.v1.2+json"

func main() {
	socket := flag.String("socket", "", "the plugin's Unix socket")
	volumes := flag.Int("volumes", 1, "names asked for are <prefix>0 .. <prefix>N-1, picked at random")
	prefix := flag.String("prefix", "s", "prefix of the volume names")
	requests := flag.Int("requests", 1000, "measured requests of each method")
	warmup := flag.Int("warmup", 100, "requests of each method made first and not measured")
	methods := flag.String("methods", "VolumeDriver.Get,VolumeDriver.Path", "methods, comma-separated, asked in turn")
	seed := flag.Int64("seed", 1, "seed of the name picks")
	flag.Parse()
	if *socket == "" {
		fmt.Fprintln(os.Stderr, "latency-client: -socket is required")
		os.Exit(2)
	}
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", *socket)
			},
			DisableCompression: true,
		},
	}
	names := strings.Split(*methods, ",")
	times := make(map[string][]float64, len(names))
	pick := rand.New(rand.NewSource(*seed))
	for i := 0; i < *warmup+*requests; i++ {
		name := fmt.Sprintf("%s%d", *prefix, pick.Intn(*volumes))
		for _, method := range names {
			start := time.Now()
			if err := call(client, method, name); err != nil {
				fmt.Fprintf(os.Stderr, "latency-client: %s %s: %v\n", method, name, err)
				os.Exit(1)
			}
			if i >= *warmup {
				times[method] = append(times[method], float64(time.Since(start).Nanoseconds())/1e6)
			}
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(times); err != nil {
		fmt.Fprintln(os.Stderr, "latency-client:", err)
		os.Exit(1)
	}
}

// call makes one request as dockerd does: the arguments encoded, POST /<method>, the answer
// read to its end (so the connection is reused) and decoded; an Err in it is a failure.
func call(client *http.Client, method, name string) error {
	var body bytes.Buffer
	if err := json.NewEncoder(&body).Encode(map[string]string{"Name": name}); err != nil {
		return err
	}
	req, err := http.NewRequest("POST", "http://plugin/"+method, &body)
	if err != nil {
		return err
	}
	req.Header.Add("Accept", accept)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var answer map[string]any
	if err := json.Unmarshal(raw, &answer); err != nil {
		return fmt.Errorf("answer is not JSON: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %v", resp.StatusCode, answer["Err"])
	}
	if e, ok := answer["Err"].(string); ok && e != "" {
		return fmt.Errorf("%s", e)
	}
	return nil
}
