package vm

import (
	"bytes"
	"fmt"
	"time"
)

// Console text that places a silent guest at one of the two points where
// TCG guests hang (see Config.HangRestart).
var (
	kernelBanner   = []byte("Linux version ")
	kernelInitDone = []byte("Freeing unused kernel")
	resetAsked     = []byte("reboot: Restarting system")
)

// hangPoint names where a guest whose console text (since its process
// started) is text has stopped, if that is a known hang point, or "".
func hangPoint(text []byte) string {
	if k := bytes.LastIndex(text, kernelBanner); k >= 0 && !bytes.Contains(text[k:], kernelInitDone) {
		return "while its kernel started"
	}
	if bytes.HasSuffix(bytes.TrimRight(text, " \t\n"), resetAsked) {
		return "after it asked for a reset"
	}
	return ""
}

// watchHang restarts p's machine if its console stays silent for
// Config.HangRestart at a hang point. from is where p's output begins in
// the console text.
func (m *Machine) watchHang(p *proc, from int) {
	tick := time.NewTicker(min(m.cfg.HangRestart/8, 5*time.Second))
	defer tick.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-tick.C:
		}
		m.mu.Lock()
		last := m.started
		if n := len(m.arrived); n > 0 && m.arrived[n-1].at.After(last) {
			last = m.arrived[n-1].at
		}
		point := hangPoint(m.text[from:])
		m.mu.Unlock()
		if point != "" && time.Since(last) >= m.cfg.HangRestart {
			m.restartHung(p, point)
			return
		}
	}
}

// restartHung cuts the power of the hung process p and starts QEMU again
// on the same disks, NVRAM and TPM state, without waiters seeing an exit.
func (m *Machine) restartHung(p *proc, point string) {
	m.lifecycle.Lock()
	defer m.lifecycle.Unlock()
	m.mu.Lock()
	if m.closed || m.p != p || m.hangRestarts >= MaxHangRestarts {
		m.mu.Unlock()
		return
	}
	m.hangRestarts++
	m.recovering = true
	m.noteLocked(fmt.Sprintf("vm: the guest's console was silent for %v %s, where TCG guests hang now and then: power cut, QEMU started again (%d of at most %d)",
		m.cfg.HangRestart, point, m.hangRestarts, MaxHangRestarts))
	ctx := m.launchCtx
	m.mu.Unlock()
	m.log.Warn("guest hung; restarting qemu", "where", point)

	p.cmd.Process.Kill()
	<-p.done
	m.closeQMP()
	err := m.launch(ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recovering = false
	if err != nil {
		m.noteLocked("vm: starting QEMU again failed: " + err.Error())
		if m.p == p {
			m.running = false
		}
	}
	m.notifyLocked()
}

// noteLocked adds a line of the harness's own to the console text and log.
func (m *Machine) noteLocked(line string) {
	old := len(m.text)
	m.text = append(m.text, "\n"+line+"\n"...)
	m.arrived = append(m.arrived, arrival{end: len(m.text), at: time.Now()})
	if m.logFile != nil {
		m.logFile.Write(m.text[old:])
	}
	m.notifyLocked()
}
