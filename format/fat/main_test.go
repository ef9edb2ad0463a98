package fat

import (
	"flag"
	"os"
	"testing"
	"time"
)

// fuzzMinimizeTime replaces the default -fuzzminimizetime of 60s. The
// minimizer tries removing every subset of bytes, which takes the full time
// for every new input of a multi-KiB volume image, so a short fuzzing run
// would spend nearly all its time minimizing instead of fuzzing.
const fuzzMinimizeTime = 2 * time.Second

func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.fuzzminimizetime" })
	if f := flag.Lookup("test.fuzzminimizetime"); f != nil && !set {
		if err := f.Value.Set(fuzzMinimizeTime.String()); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}
