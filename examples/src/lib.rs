//! Runnable examples of Roundtable live beside this file.
