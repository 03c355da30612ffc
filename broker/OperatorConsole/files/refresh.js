// Re-reads a page's figures every few seconds while it is on screen, but not while a dialog is open.
export function every(ms, load) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    if (!document.getElementById('reason-dialog').open && !document.hidden) {
      try { await load(); } catch { /* the page shows its own error; try again next tick */ }
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  timer = setTimeout(tick, ms);
  return { stop() { stopped = true; clearTimeout(timer); } };
}
