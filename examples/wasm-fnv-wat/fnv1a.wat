;; A Cohort wasm job in hand-written WebAssembly text: the 32-bit FNV-1a hash of each record, written
;; as 4 little-endian bytes. Build: see README.md.
(module
  ;; The only imports Cohort gives: the memory (1 page to start, at most 16 pages = 1 MiB here) ...
  (import "cohort" "memory" (memory 1 16))
  ;; ... and a progress sink (permille of this record), which this module does not need.

  ;; A bump allocator from 1 KiB up; each record gets a fresh instance, so nothing is ever freed.
  (global $next (mut i32) (i32.const 1024))

  (func $alloc (export "alloc") (param $len i32) (result i32)
    (local $p i32)
    (local $end i32)
    (local.set $p (global.get $next))
    (local.set $end (i32.add (local.get $p) (local.get $len)))
    ;; Grow the memory when the block would pass its end; past the maximum memory.grow gives -1.
    (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.eq
              (memory.grow
                (i32.add (i32.shr_u (i32.sub (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
                                    (i32.const 16))
                         (i32.const 1)))
              (i32.const -1))
          (then unreachable))))
    (global.set $next (local.get $end))
    (local.get $p))

  (func (export "run") (param $ptr i32) (param $len i32) (result i64)
    (local $h i32)
    (local $i i32)
    (local $out i32)
    (local.set $h (i32.const 0x811c9dc5))
    (block $done
      (loop $byte
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $h
          (i32.mul
            (i32.xor (local.get $h) (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
            (i32.const 0x01000193)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $byte)))
    (local.set $out (call $alloc (i32.const 4)))
    (i32.store (local.get $out) (local.get $h))
    ;; The output: its address in the high 32 bits, its length in the low 32 bits.
    (i64.or (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32)) (i64.const 4))))
