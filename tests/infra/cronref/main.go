// Command cronref prints robfig/cron v3's fire times, as Knative's PingSource computes them.
//
// Each stdin line is {"expr": "...", "tz": "Europe/Berlin", "after": "RFC3339", "n": 5}; each
// answer line is {"next": ["RFC3339 UTC", ...]} (n successive Schedule.Next results of
// cron.ParseStandard("CRON_TZ=" + tz + " " + expr), stopping at a zero time) or {"error": "..."}.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/robfig/cron/v3"
)

type query struct {
	Expr  string `json:"expr"`
	Tz    string `json:"tz"`
	After string `json:"after"`
	N     int    `json:"n"`
}

// answer is {"next": [...]} (empty when the schedule never fires) or {"error": "..."}.
type answer map[string]any

func run(line []byte) answer {
	var q query
	if err := json.Unmarshal(line, &q); err != nil {
		return answer{"error": "bad query: " + err.Error()}
	}
	after, err := time.Parse(time.RFC3339Nano, q.After)
	if err != nil {
		return answer{"error": "bad after: " + err.Error()}
	}
	schedule, err := cron.ParseStandard("CRON_TZ=" + q.Tz + " " + q.Expr)
	if err != nil {
		return answer{"error": err.Error()}
	}
	next := []string{}
	at := after
	for i := 0; i < q.N; i++ {
		at = schedule.Next(at)
		if at.IsZero() {
			break
		}
		next = append(next, at.UTC().Format(time.RFC3339))
	}
	return answer{"next": next}
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	for in.Scan() {
		if err := enc.Encode(run(in.Bytes())); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
