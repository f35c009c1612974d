//go:build unix

package loadgen

import (
	"syscall"
	"time"
)

// cpuSample is the process's CPU time so far.
type cpuSample struct{ user, sys time.Duration }

func cpuTime() cpuSample {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return cpuSample{}
	}
	return cpuSample{user: time.Duration(ru.Utime.Nano()), sys: time.Duration(ru.Stime.Nano())}
}

// sub is the CPU used between before and c, over wall time.
func (c cpuSample) sub(before cpuSample, wall time.Duration) CPU {
	u, s := c.user-before.user, c.sys-before.sys
	out := CPU{UserSeconds: round3(u.Seconds()), SystemSeconds: round3(s.Seconds())}
	if wall > 0 {
		out.PercentOfCore = round1(100 * (u + s).Seconds() / wall.Seconds())
	}
	return out
}
