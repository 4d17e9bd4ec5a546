;; Hand-written SIMD kernels that run on the tfjs wasm backend's own memory (imported): pointers
;; are byte offsets of tensors in that memory (kernels.ts instantiates this module per backend).
;; Built into kernels-wasm.ts by `npm run build:wasm` (scripts/build-wasm.mjs, wabt).
(module
  (import "env" "memory" (memory 1))

  ;; Adam's update for one variable, four lanes at a time. Every operation is one IEEE float32
  ;; operation in the order tfjs's AdamOptimizer applies its kernels, so the results are bit for
  ;; bit those of its eleven kernels (wasm's SIMD and scalar float ops round alike, with
  ;; subnormals). See lib/engine/train/fused-adam.ts.
  (func (export "adam")
    (param $g i32) (param $m i32) (param $v i32) (param $w i32)
    (param $mOut i32) (param $vOut i32) (param $wOut i32) (param $n i32)
    (param $b1 f32) (param $b2 f32) (param $c1 f32) (param $c2 f32)
    (param $oneMinusAcc1 f32) (param $oneMinusAcc2 f32) (param $eps f32) (param $step f32)
    (local $i i32) (local $end i32) (local $off i32)
    (local $vb1 v128) (local $vb2 v128) (local $vc1 v128) (local $vc2 v128)
    (local $vo1 v128) (local $vo2 v128) (local $veps v128) (local $vstep v128)
    (local $gk v128) (local $mk v128) (local $vk v128) (local $den v128)
    (local $gs f32) (local $ms f32) (local $vs f32) (local $ds f32)
    (local.set $vb1 (f32x4.splat (local.get $b1)))
    (local.set $vb2 (f32x4.splat (local.get $b2)))
    (local.set $vc1 (f32x4.splat (local.get $c1)))
    (local.set $vc2 (f32x4.splat (local.get $c2)))
    (local.set $vo1 (f32x4.splat (local.get $oneMinusAcc1)))
    (local.set $vo2 (f32x4.splat (local.get $oneMinusAcc2)))
    (local.set $veps (f32x4.splat (local.get $eps)))
    (local.set $vstep (f32x4.splat (local.get $step)))
    (local.set $end (i32.and (local.get $n) (i32.const -4)))
    ;; Four elements a turn.
    (block $vectorDone
      (loop $vector
        (br_if $vectorDone (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $off (i32.shl (local.get $i) (i32.const 2)))
        (local.set $gk (v128.load (i32.add (local.get $g) (local.get $off))))
        ;; m = m·β₁ + g·(1 − β₁)
        (local.set $mk (f32x4.add
          (f32x4.mul (v128.load (i32.add (local.get $m) (local.get $off))) (local.get $vb1))
          (f32x4.mul (local.get $gk) (local.get $vc1))))
        ;; v = v·β₂ + g²·(1 − β₂)
        (local.set $vk (f32x4.add
          (f32x4.mul (v128.load (i32.add (local.get $v) (local.get $off))) (local.get $vb2))
          (f32x4.mul (f32x4.mul (local.get $gk) (local.get $gk)) (local.get $vc2))))
        ;; √(v / (1 − β₂ᵗ)) + ε
        (local.set $den (f32x4.add (f32x4.sqrt (f32x4.div (local.get $vk) (local.get $vo2))) (local.get $veps)))
        (v128.store (i32.add (local.get $mOut) (local.get $off)) (local.get $mk))
        (v128.store (i32.add (local.get $vOut) (local.get $off)) (local.get $vk))
        ;; w + ((m / (1 − β₁ᵗ)) / den)·(−rate)
        (v128.store (i32.add (local.get $wOut) (local.get $off))
          (f32x4.add
            (f32x4.mul (f32x4.div (f32x4.div (local.get $mk) (local.get $vo1)) (local.get $den)) (local.get $vstep))
            (v128.load (i32.add (local.get $w) (local.get $off)))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $vector)))
    ;; The last n mod 4 elements, one at a time, the same operations.
    (block $scalarDone
      (loop $scalar
        (br_if $scalarDone (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $off (i32.shl (local.get $i) (i32.const 2)))
        (local.set $gs (f32.load (i32.add (local.get $g) (local.get $off))))
        (local.set $ms (f32.add
          (f32.mul (f32.load (i32.add (local.get $m) (local.get $off))) (local.get $b1))
          (f32.mul (local.get $gs) (local.get $c1))))
        (local.set $vs (f32.add
          (f32.mul (f32.load (i32.add (local.get $v) (local.get $off))) (local.get $b2))
          (f32.mul (f32.mul (local.get $gs) (local.get $gs)) (local.get $c2))))
        (local.set $ds (f32.add (f32.sqrt (f32.div (local.get $vs) (local.get $oneMinusAcc2))) (local.get $eps)))
        (f32.store (i32.add (local.get $mOut) (local.get $off)) (local.get $ms))
        (f32.store (i32.add (local.get $vOut) (local.get $off)) (local.get $vs))
        (f32.store (i32.add (local.get $wOut) (local.get $off))
          (f32.add
            (f32.mul (f32.div (f32.div (local.get $ms) (local.get $oneMinusAcc1)) (local.get $ds)) (local.get $step))
            (f32.load (i32.add (local.get $w) (local.get $off)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $scalar))))

  ;; tanh of n floats, four lanes at a time: the 13/6-degree rational interpolant of Eigen's
  ;; generic_fast_tanh_float (accurate to a couple of ulp; the input clamped to ±7.9053, beyond
  ;; which tanh is ±1 in float32). wasm's own Tanh calls libm's tanhf once per element.
  (func (export "tanh") (param $x i32) (param $out i32) (param $n i32)
    (local $i i32) (local $end i32) (local $off i32)
    (local.set $end (i32.and (local.get $n) (i32.const -4)))
    (block $vectorDone
      (loop $vector
        (br_if $vectorDone (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $off (i32.shl (local.get $i) (i32.const 2)))
        (v128.store (i32.add (local.get $out) (local.get $off))
          (call $tanh4 (v128.load (i32.add (local.get $x) (local.get $off)))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $vector)))
    ;; The last n mod 4: through the same lanes, one element in lane 0.
    (block $scalarDone
      (loop $scalar
        (br_if $scalarDone (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $off (i32.shl (local.get $i) (i32.const 2)))
        (f32.store (i32.add (local.get $out) (local.get $off))
          (f32x4.extract_lane 0 (call $tanh4 (f32x4.splat (f32.load (i32.add (local.get $x) (local.get $off)))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $scalar))))

  (func $tanh4 (param $a v128) (result v128)
    (local $x v128) (local $x2 v128) (local $p v128) (local $q v128)
    ;; min/max propagate NaN: tanh(NaN) stays NaN.
    (local.set $x (f32x4.max (f32x4.min (local.get $a) (f32x4.splat (f32.const 7.90531110763549805))) (f32x4.splat (f32.const -7.90531110763549805))))
    (local.set $x2 (f32x4.mul (local.get $x) (local.get $x)))
    ;; p = x·(α₁ + x²(α₃ + x²(α₅ + x²(α₇ + x²(α₉ + x²(α₁₁ + x²α₁₃))))))
    (local.set $p (f32x4.add (f32x4.mul (local.get $x2) (f32x4.splat (f32.const -2.76076847742355e-16))) (f32x4.splat (f32.const 2.00018790482477e-13))))
    (local.set $p (f32x4.add (f32x4.mul (local.get $x2) (local.get $p)) (f32x4.splat (f32.const -8.60467152213735e-11))))
    (local.set $p (f32x4.add (f32x4.mul (local.get $x2) (local.get $p)) (f32x4.splat (f32.const 5.12229709037114e-08))))
    (local.set $p (f32x4.add (f32x4.mul (local.get $x2) (local.get $p)) (f32x4.splat (f32.const 1.48572235717979e-05))))
    (local.set $p (f32x4.add (f32x4.mul (local.get $x2) (local.get $p)) (f32x4.splat (f32.const 6.37261928875436e-04))))
    (local.set $p (f32x4.add (f32x4.mul (local.get $x2) (local.get $p)) (f32x4.splat (f32.const 4.89352455891786e-03))))
    (local.set $p (f32x4.mul (local.get $x) (local.get $p)))
    ;; q = β₀ + x²(β₂ + x²(β₄ + x²β₆))
    (local.set $q (f32x4.add (f32x4.mul (local.get $x2) (f32x4.splat (f32.const 1.19825839466702e-06))) (f32x4.splat (f32.const 1.18534705686654e-04))))
    (local.set $q (f32x4.add (f32x4.mul (local.get $x2) (local.get $q)) (f32x4.splat (f32.const 2.26843463243900e-03))))
    (local.set $q (f32x4.add (f32x4.mul (local.get $x2) (local.get $q)) (f32x4.splat (f32.const 4.89352518554385e-03))))
    ;; Below |x| = 0.0004, tanh(x) is x to within an ulp, and p/q would lose subnormals' bits.
    (v128.bitselect
      (local.get $a)
      (f32x4.div (local.get $p) (local.get $q))
      (f32x4.lt (f32x4.abs (local.get $a)) (f32x4.splat (f32.const 0.0004))))))
