"""The IVR engine: call flows as data (:mod:`.flow`), working hours (:mod:`.calendar`) and the pure
call-flow interpreter (:mod:`.interp`); the daemon's media legs and SIP adapter build on these."""
