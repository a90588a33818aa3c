//! Headless Chromium (Debian `chromium`) driven through the DevTools protocol over a pipe
//! (`--remote-debugging-pipe`, std only): open pages, fill and submit forms, read the DOM and
//! the pixels of loaded images, take screenshots for a look (`target/test-artifacts/`).

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Kills a child process when dropped.
pub struct Guard(pub Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `target/test-artifacts/` (screenshots to look at), created.
pub fn artifacts() -> PathBuf {
    let dir = crate::root().join("target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A headless Chromium speaking CDP over fds 3 (commands in) and 4 (answers out).
pub struct Browser {
    _child: Guard,
    profile: PathBuf,
    to: std::fs::File,
    from: BufReader<std::fs::File>,
    next_id: u64,
    session: String,
}

fn pipe() -> (RawFd, RawFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe(2) to fill.
    let r = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(r, 0, "pipe: {}", std::io::Error::last_os_error());
    (fds[0], fds[1])
}

impl Browser {
    /// Starts Chromium headless (`--headless --no-sandbox --disable-gpu
    /// --disable-background-networking`) on a blank page.
    pub fn start() -> Browser {
        crate::require_tool("chromium", "chromium");
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let profile =
            std::env::temp_dir().join(format!("teiten-chromium-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).unwrap();
        let (cmd_r, cmd_w) = pipe();
        let (ans_r, ans_w) = pipe();
        let mut cmd = Command::new("chromium");
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--remote-debugging-pipe",
            "--window-size=1280,1600",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls (fcntl, dup2, close) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // Move the child's ends above 4 and close every original first, so that no
                // close or dup2 below hits fd 3 or 4 after they are set.
                let a = libc::fcntl(cmd_r, libc::F_DUPFD, 10);
                let b = libc::fcntl(ans_w, libc::F_DUPFD, 10);
                if a < 0 || b < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                for fd in [cmd_r, cmd_w, ans_r, ans_w] {
                    libc::close(fd);
                }
                if libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(a);
                libc::close(b);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .expect("start chromium (apt-get install chromium)");
        // SAFETY: the fds come from pipe() above and are owned here from now on.
        let (to, from) = unsafe {
            libc::close(cmd_r);
            libc::close(ans_w);
            (
                std::fs::File::from_raw_fd(cmd_w),
                std::fs::File::from_raw_fd(ans_r),
            )
        };
        let mut b = Browser {
            _child: Guard(child),
            profile,
            to,
            from: BufReader::new(from),
            next_id: 0,
            session: String::new(),
        };
        let target = b.call("Target.createTarget", json!({"url": "about:blank"}), false);
        let id = target["targetId"].as_str().unwrap().to_owned();
        let attached = b.call(
            "Target.attachToTarget",
            json!({"targetId": id, "flatten": true}),
            false,
        );
        b.session = attached["sessionId"].as_str().unwrap().to_owned();
        b.call("Page.enable", json!({}), true);
        b.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 1600, "deviceScaleFactor": 1, "mobile": false}),
            true,
        );
        b
    }

    /// Sends a command (to the page session when `page`) and returns its result.
    pub fn call(&mut self, method: &str, params: Value, page: bool) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if page {
            msg["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).expect("chromium closed its pipe");
        loop {
            let mut buf = Vec::new();
            let n = self.from.read_until(0, &mut buf).unwrap();
            assert!(n > 0, "chromium exited while waiting for {method}");
            buf.pop();
            let v: Value = serde_json::from_slice(&buf).unwrap();
            if v["id"] == id {
                if let Some(e) = v.get("error") {
                    panic!("{method} failed: {e}");
                }
                return v["result"].clone();
            }
        }
    }

    /// Evaluates JavaScript in the page (promises awaited) and returns the value.
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "awaitPromise": true, "returnByValue": true}),
            true,
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("`{expr}` threw: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Marks the current document, so that [`Browser::wait_new`] sees when another replaced it.
    pub fn mark(&mut self) {
        self.eval("window.__teiten_old = 1; true");
    }

    /// Waits until a new document (without the mark) has loaded.
    pub fn wait_new(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let done = self.eval("!window.__teiten_old && document.readyState === 'complete'");
            if done == json!(true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "page did not load: {}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Opens `url` and waits until it has loaded.
    pub fn goto(&mut self, url: &str) {
        self.mark();
        self.call("Page.navigate", json!({"url": url}), true);
        self.wait_new();
    }

    /// The current address.
    pub fn url(&mut self) -> String {
        self.eval("location.href").as_str().unwrap_or("").to_owned()
    }

    /// The current document.
    pub fn html(&mut self) -> String {
        self.eval("document.documentElement.outerHTML")
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Clicks an element (a submit button) and waits for the next page.
    pub fn click(&mut self, selector: &str) {
        self.mark();
        self.eval(&format!(
            "document.querySelector({selector:?}).click(); true"
        ));
        self.wait_new();
    }

    /// Sets the value of a form field.
    pub fn set(&mut self, selector: &str, value: &str) {
        self.eval(&format!(
            "document.querySelector({selector:?}).value = {value:?}; true"
        ));
    }

    /// Pixels of a loaded chart image: width, height, non-white pixels, a hash.
    pub fn chart(&mut self, selector: &str) -> (u64, u64, u64, u64) {
        let v = self.eval(&format!(
            "(async () => {{ const i = document.querySelector({selector:?}); \
             if (!i.complete) await new Promise(r => {{ i.onload = r; i.onerror = r; }}); \
             if (!i.naturalWidth) return [0, 0, 0, 0]; \
             const c = document.createElement('canvas'); c.width = i.naturalWidth; \
             c.height = i.naturalHeight; const x = c.getContext('2d'); x.drawImage(i, 0, 0); \
             const d = x.getImageData(0, 0, c.width, c.height).data; let h = 0, n = 0; \
             for (let k = 0; k < d.length; k += 4) {{ \
               if (d[k] < 245 || d[k + 1] < 245 || d[k + 2] < 245) n++; \
               h = (Math.imul(h, 31) + d[k] + 7 * d[k + 1] + 13 * d[k + 2]) >>> 0; }} \
             return [i.naturalWidth, i.naturalHeight, n, h]; }})()"
        ));
        let a: Vec<u64> = v
            .as_array()
            .unwrap_or_else(|| panic!("chart {selector}: {v}"))
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        (a[0], a[1], a[2], a[3])
    }

    /// Saves a screenshot as `target/test-artifacts/<name>`.
    pub fn screenshot(&mut self, name: &str) -> PathBuf {
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}), true);
        let bytes = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            r["data"].as_str().unwrap(),
        )
        .expect("a base64 screenshot");
        assert_eq!(&bytes[1..4], b"PNG");
        let path = artifacts().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}
