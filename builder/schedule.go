package builder

import (
	"context"
	"fmt"
	"sort"
)

// SkippedError marks a package that was not built because a build input
// failed, or because the run stopped at a failure.
type SkippedError struct {
	// Cause is the failed input, or "" when the run stopped early.
	Cause string
}

func (e *SkippedError) Error() string {
	if e.Cause == "" {
		return "not built: the build stopped at a failure"
	}
	return fmt.Sprintf("not built: input %s failed", e.Cause)
}

// schedule calls run for every node of order (a topological order of the
// graph deps: node → the nodes it needs), at most jobs at a time, each only
// after all its dependencies succeeded. A failure marks every node that
// needs the failed one as skipped; without keepGoing no new node starts
// after a failure (running ones finish). It returns each node's error.
func schedule(ctx context.Context, order []string, deps map[string][]string, jobs int, keepGoing bool, run func(context.Context, string) error) map[string]error {
	if jobs < 1 {
		jobs = 1
	}
	index := map[string]int{}
	for i, n := range order {
		index[n] = i
	}
	pending := map[string]int{}
	users := map[string][]string{}
	for _, n := range order {
		for _, d := range deps[n] {
			if _, ok := index[d]; ok {
				pending[n]++
				users[d] = append(users[d], n)
			}
		}
	}
	var ready []string
	for _, n := range order {
		if pending[n] == 0 {
			ready = append(ready, n)
		}
	}
	type done struct {
		name string
		err  error
	}
	results := map[string]error{}
	finished := make(chan done)
	running, failed := 0, false
	var skip func(n, cause string)
	skip = func(n, cause string) {
		for _, u := range users[n] {
			if _, ok := results[u]; !ok {
				results[u] = &SkippedError{Cause: cause}
				skip(u, cause)
			}
		}
	}
	for {
		for running < jobs && len(ready) > 0 && (keepGoing || !failed) && ctx.Err() == nil {
			n := ready[0]
			ready = ready[1:]
			running++
			go func() { finished <- done{n, run(ctx, n)} }()
		}
		if running == 0 {
			break
		}
		d := <-finished
		running--
		results[d.name] = d.err
		if d.err != nil {
			failed = true
			skip(d.name, d.name)
			continue
		}
		for _, u := range users[d.name] {
			if pending[u]--; pending[u] == 0 {
				if _, skipped := results[u]; !skipped {
					ready = append(ready, u)
				}
			}
		}
		sort.Slice(ready, func(i, j int) bool { return index[ready[i]] < index[ready[j]] })
	}
	for _, n := range order {
		if _, ok := results[n]; !ok {
			if err := ctx.Err(); err != nil {
				results[n] = err
			} else {
				results[n] = &SkippedError{}
			}
		}
	}
	return results
}
