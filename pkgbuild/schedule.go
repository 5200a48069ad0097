package pkgbuild

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// depFailedError marks a package skipped because a requirement failed.
type depFailedError struct{ name, dep string }

func (e *depFailedError) Error() string {
	return fmt.Sprintf("package %s not built: requirement %s failed", e.name, e.dep)
}

// BuildPlan builds every package of pl not already in the store, requirements
// first and up to Jobs at once. Independent builds continue after a failure;
// packages that need a failed one are skipped. Results are in plan order (only
// packages that are in the store); the error joins every build failure.
func (b *Builder) BuildPlan(ctx context.Context, pl *Plan) ([]Result, error) {
	type state struct {
		done chan struct{}
		res  Result
		err  error
	}
	states := map[string]*state{}
	for _, n := range pl.Order {
		states[n] = &state{done: make(chan struct{})}
	}
	sem := make(chan struct{}, b.opts.Jobs)
	var wg sync.WaitGroup
	for _, n := range pl.Order {
		p, st := pl.Packages[n], states[n]
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(st.done)
			for _, r := range sortedKeys(p.Requires) {
				<-states[r].done
				if states[r].err != nil {
					st.err = &depFailedError{name: p.Name, dep: r}
					return
				}
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				st.err = fmt.Errorf("package %s: %w", p.Name, ctx.Err())
				return
			}
			defer func() { <-sem }()
			deps := map[string]Result{}
			for _, c := range p.Closure {
				deps[c] = states[c].res
			}
			st.res, st.err = b.buildOne(ctx, p, deps)
		}()
	}
	wg.Wait()
	var results []Result
	var errs []error
	for _, n := range pl.Order {
		st := states[n]
		var dep *depFailedError
		switch {
		case st.err == nil:
			results = append(results, st.res)
		case !errors.As(st.err, &dep):
			errs = append(errs, st.err)
		}
	}
	return results, errors.Join(errs...)
}
