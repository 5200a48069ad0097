package cli

import (
	"io"
	"os"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/sys/unix"
)

// stageProgress shows one spinner line per pipeline stage on a terminal.
type stageProgress struct {
	p    *mpb.Progress
	bars map[string]*mpb.Bar
}

// isTerminal reports whether w is a terminal (progress bars only then).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func newStageProgress(w io.Writer) *stageProgress {
	return &stageProgress{p: mpb.New(mpb.WithOutput(w), mpb.WithWidth(12)), bars: map[string]*mpb.Bar{}}
}

// stage is a build.Options.OnStage.
func (s *stageProgress) stage(name string, finished bool) {
	if !finished {
		s.bars[name] = s.p.New(1, mpb.SpinnerStyle(), mpb.BarFillerClearOnComplete(),
			mpb.PrependDecorators(decor.Name(name, decor.WC{W: 26, C: decor.DindentRight})),
			mpb.AppendDecorators(decor.OnComplete(decor.Elapsed(decor.ET_STYLE_GO), "done")))
		return
	}
	if b := s.bars[name]; b != nil {
		b.Increment()
	}
}

// wait ends the display; bars of stages that never finished are dropped.
func (s *stageProgress) wait() {
	for _, b := range s.bars {
		if !b.Completed() {
			b.Abort(false)
		}
	}
	s.p.Wait()
}
