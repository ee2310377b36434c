//! The REPL (`sop agent --config FILE`).

use std::io::{BufRead, Write};

use crate::agent::format_context;
use crate::error::AgentError;
use crate::service::Service;

/// Reads questions from `input` until `exit` or its end, and writes answers to `output`.
/// `reset` clears the screen; a failed answer falls back to the 3 best search hits; a
/// terminated session ends the loop.
///
/// # Errors
/// Only I/O errors of `input`/`output`.
pub async fn run_loop<R: BufRead, W: Write>(
    service: &Service,
    mut input: R,
    mut output: W,
) -> std::io::Result<()> {
    loop {
        write!(output, "Patient> ")?;
        output.flush()?;
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            writeln!(output)?;
            return Ok(());
        }
        let q = line.trim();
        match q {
            "" => continue,
            "exit" | "quit" => return Ok(()),
            "reset" => {
                write!(output, "\x1b[2J\x1b[H")?;
                continue;
            }
            _ => {}
        }
        match service.ask(q).await {
            Ok(a) => writeln!(output, "{a}\n")?,
            Err(AgentError::Terminated(r)) => {
                writeln!(output, "Session terminated: {r}.")?;
                return Ok(());
            }
            Err(AgentError::PolicyViolation(r)) => writeln!(output, "Refused: {r}.\n")?,
            Err(e) => {
                writeln!(output, "(the agent failed: {e}; closest entries:)")?;
                match service.search(q, 3).await {
                    Ok(h) => writeln!(output, "{}\n", format_context(&h))?,
                    Err(e) => writeln!(output, "(search failed too: {e})\n")?,
                }
            }
        }
    }
}
