"""Placement: the round-robin rule, the placement dict, and a placed model on the
three logical CPUs of conftest computing what the unplaced model computes."""
import numpy as np
import pytest
import tensorflow as tf

from nmt import config as config_lib
from nmt.model import devices, precision
from nmt.model.seq2seq import build_model
from nmt.training import trainer
from tests.batches import random_batch

VOCAB = 20
CPU = "/device:CPU:{}".format


def test_round_robin_with_base_offset():
    assert [devices.device_for_layer(i, 3) for i in range(5)] == [
        "/device:GPU:0", "/device:GPU:1", "/device:GPU:2", "/device:GPU:0", "/device:GPU:1"]
    assert [devices.device_for_layer(i, 4, base_gpu=2, device_type="CPU") for i in range(3)] == [
        CPU(2), CPU(3), CPU(0)]
    assert devices.device_for_layer(0, 1, base_gpu=5) == "/device:GPU:0"


def test_no_devices_means_no_placement():
    assert devices.device_for_layer(3, 0) is None
    assert devices.model_placement(config_lib.ModelConfig(), 0) is None
    assert devices.training_placement(config_lib.ModelConfig(),
                                      config_lib.TrainConfig(num_train_steps=1)) is None


def test_negative_arguments_are_rejected():
    with pytest.raises(ValueError, match="must be >= 0"):
        devices.device_for_layer(0, -1)
    with pytest.raises(config_lib.ConfigError, match="num_gpus must be >= 0"):
        config_lib.TrainConfig(num_train_steps=1, num_gpus=-1).validate()


def test_too_many_devices_is_a_one_line_error_with_the_count():
    with pytest.raises(devices.DeviceError,
                       match="asked for 3 devices but this machine has 2 GPUs"):
        devices.device_type_for(3, num_gpus_present=2, num_cpus_present=8)
    with pytest.raises(devices.DeviceError, match="no GPU and 3 logical CPUs"):
        devices.device_type_for(4)  # conftest: 3 logical CPUs, no GPU
    train = config_lib.TrainConfig(num_train_steps=1, num_gpus=5)
    with pytest.raises(devices.DeviceError, match="--num_cpu_devices=5") as error:
        devices.training_placement(config_lib.ModelConfig(), train)
    assert "\n" not in str(error.value)


def test_device_type_prefers_gpus_and_falls_back_to_logical_cpus():
    assert devices.device_type_for(2, num_gpus_present=2, num_cpus_present=1) == "GPU"
    assert devices.device_type_for(3) == "CPU"
    assert [d.split("/device:")[-1] for d in devices.replica_devices(2)] == ["CPU:0", "CPU:1"]
    assert len(devices.replica_devices(0)) == 3  # 0: all of them


def test_a_split_cpu_runs_one_op_at_a_time():
    # conftest split the CPU with devices.split_cpu: replicas on logical CPUs must not
    # run oneDNN batched matmuls at once (heap corruption with TensorFlow 2.21)
    assert len(tf.config.list_logical_devices("CPU")) == 3
    assert tf.config.threading.get_inter_op_parallelism_threads() == 1


def test_split_cpu_too_late_accepts_the_same_split_and_refuses_another():
    devices.split_cpu(0)
    devices.split_cpu(3)  # conftest already made 3
    with pytest.raises(devices.DeviceError, match="already started with 3"):
        devices.split_cpu(2)


def test_placement_dict_documents_every_part():
    config = config_lib.ModelConfig(num_encoder_layers=2, num_decoder_layers=2)
    placement = devices.model_placement(config, num_gpus=3, base_gpu=1)
    gpu = "/device:GPU:{}".format
    assert placement == {
        "encoder": [gpu(1), gpu(2)], "encoder_backward": [gpu(2), gpu(0)],
        "decoder": [gpu(1), gpu(2)], "embedding": gpu(1),
        "attention": gpu(2),  # the top decoder layer queries it
        "softmax": gpu(0),  # the next device after the 2 decoder layers
    }
    gnmt = config_lib.ModelConfig(num_decoder_layers=3, attention_architecture="gnmt",
                                  encoder_type="gnmt")
    placement = devices.model_placement(gnmt, num_gpus=2)
    assert placement["attention"] == gpu(0)  # the bottom layer queries it
    assert placement["softmax"] == gpu(0)  # no free device: the top layer's ((2 + 0) % 2)


def tiny_config(**overrides):
    return config_lib.ModelConfig(**{
        "num_units": 16, "embedding_size": 8, "num_encoder_layers": 2, "num_decoder_layers": 2,
        "encoder_type": "bi", "dropout": 0.0, **overrides})


def on(tensor_or_variable, device):
    return tensor_or_variable.device.endswith(device[len("/device"):])


@pytest.fixture(scope="module")
def placed_and_plain():
    config = tiny_config()
    placement = devices.model_placement(config, num_gpus=3, device_type="CPU")
    placed = build_model(config, VOCAB, VOCAB, placement=placement)
    plain = build_model(config, VOCAB, VOCAB)
    for target, source in zip(placed.variables, plain.variables):
        assert target.shape == source.shape
        target.assign(source)
    return placement, placed, plain


@pytest.mark.parametrize("projection_dtype", [None, tf.bfloat16], ids=["fp32", "bf16_output"])
def test_a_placed_model_translates_like_the_plain_one(placed_and_plain, projection_dtype):
    _, placed, plain = placed_and_plain
    batch = random_batch(np.random.default_rng(3))
    placed_out, plain_out = (
        model.translate(batch.src, batch.src_len, beam_size=3, max_length=8,
                        projection_dtype=projection_dtype) for model in (placed, plain))
    np.testing.assert_array_equal(placed_out.ids, plain_out.ids)
    np.testing.assert_allclose(placed_out.scores, plain_out.scores, rtol=1e-5)


def test_each_layer_and_part_lives_on_its_device(placed_and_plain):
    placement, model, _ = placed_and_plain
    assert placement["encoder"] == [CPU(0), CPU(1)]
    assert placement["encoder_backward"] == [CPU(1), CPU(2)]
    assert placement["softmax"] == CPU(2)
    parts = []
    for i, (fw, bw, _) in enumerate(model.encoder.layers):
        parts += [(fw, placement["encoder"][i]), (bw, placement["encoder_backward"][i])]
    parts += list(zip(model.decoder.layers, placement["decoder"]))
    parts += [(model.src_embedding, placement["embedding"]),
              (model.decoder.attention, placement["attention"]),
              (model.decoder.attention_layer, placement["attention"]),
              (model.decoder.output_layer, placement["softmax"])]
    for part, device in parts:
        assert part.trainable_variables
        assert all(on(v, device) for v in part.trainable_variables), (part.name, device)
    for cell, device in parts[:-4]:  # a step of each recurrent layer runs on its device
        kernel = next(v for v in cell.trainable_variables if "input_kernel" in v.name)
        x = tf.zeros([2, kernel.shape[0]])  # [batch, input_size]
        output, _ = cell(x, cell.zero_state(2))
        assert on(output, device)


def _graph_devices(concrete):
    """Devices of every op of a traced function, loop bodies included."""
    graph_def = concrete.graph.as_graph_def()
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    return {n.device for n in nodes if n.device}


def test_traced_loss_runs_on_every_placed_device(placed_and_plain):
    placement, model, _ = placed_and_plain
    batch = random_batch(np.random.default_rng(0))
    concrete = tf.function(
        lambda b: model.loss(b, training=True).loss_sum).get_concrete_function(batch)
    used = {d.split("/device:")[-1] for d in _graph_devices(concrete)}
    assert used == {"CPU:0", "CPU:1", "CPU:2"}


def test_placed_loss_and_gradients_equal_the_unplaced_ones(placed_and_plain):
    _, placed, plain = placed_and_plain
    batch = random_batch(np.random.default_rng(1))
    results = []
    for model in (placed, plain):
        with tf.GradientTape() as tape:
            out = model.loss(batch, label_smoothing=0.1, training=True)
        results.append((out, tape.gradient(out.loss_sum, model.trainable_variables)))
    (out_a, grads_a), (out_b, grads_b) = results
    np.testing.assert_allclose(out_a.loss_sum, out_b.loss_sum, rtol=1e-6)
    np.testing.assert_allclose(out_a.nll_sum, out_b.nll_sum, rtol=1e-6)
    for a, b in zip(grads_a, grads_b):
        np.testing.assert_allclose(tf.convert_to_tensor(a), tf.convert_to_tensor(b),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16])
def test_traced_placed_gradients_equal_the_unplaced_ones(placed_and_plain, dtype):
    """As above in a tf.function, where the placed gradients are built on the layers'
    devices (nmt.model.devices.call_on), in float32 and in bfloat16."""
    _, placed, plain = placed_and_plain
    batch = random_batch(np.random.default_rng(2))
    results = []
    for model in (placed, plain):
        @tf.function
        def step(batch):
            with tf.GradientTape() as tape:
                out = model.loss(batch, 0.1, training=True, compute_dtype=dtype)
            return out.loss_sum, tape.gradient(out.loss_sum, model.trainable_variables)
        loss, grads = step(batch)
        results.append((loss, [tf.convert_to_tensor(g) for g in grads]))
    (loss_a, grads_a), (loss_b, grads_b) = results
    np.testing.assert_allclose(loss_a, loss_b, rtol=1e-6)
    for a, b in zip(grads_a, grads_b):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_placed_fp16_train_step_with_loss_scaling_matches_the_unplaced_one():
    """The trainer's step (training.make_train_step) in fp16 with dynamic loss scaling:
    the same loss, gradient norm and updated weights with and without placement."""
    config = tiny_config()
    train = config_lib.TrainConfig(num_train_steps=1, precision="fp16", optimizer="sgd",
                                   jit_compile=False)
    placed = build_model(config, VOCAB, VOCAB,
                         placement=devices.model_placement(config, 3, device_type="CPU"))
    plain = build_model(config, VOCAB, VOCAB)
    for target, source in zip(placed.variables, plain.variables):
        target.assign(source)
    batch = random_batch(np.random.default_rng(3))
    results = []
    for model in (placed, plain):
        step = trainer.make_train_step(model, trainer.make_optimizer(train), train,
                                       precision.DynamicLossScale())
        out, norm, applied = step(batch)
        assert bool(applied)
        results.append((out.loss_sum, norm, model.trainable_variables))
    (loss_a, norm_a, vars_a), (loss_b, norm_b, vars_b) = results
    np.testing.assert_allclose(loss_a, loss_b, rtol=1e-6)
    np.testing.assert_allclose(norm_a, norm_b, rtol=1e-5)
    for a, b in zip(vars_a, vars_b):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def _matmuls_producing(graph_def, tensor):
    """The matmuls nearest to `tensor` (a top-level output of graph_def) that compute it:
    walks back from it, stopping at top-level MatMul / BatchMatMulV2 ops and at While
    ops, and inside each such gradient loop's body from that output to the nearest
    matmuls. -> [NodeDef]"""
    nodes = {n.name: n for n in graph_def.node}
    functions = {f.signature.name: f for f in graph_def.library.function}
    outputs, matmuls, pending, seen = [], [], [tensor], set()
    while pending:  # top level: to matmuls and (While node, output index)
        name, _, index = pending.pop().lstrip("^").partition(":")
        node = nodes[name]
        if node.op in ("While", "StatelessWhile"):
            outputs.append((node, int(index or 0)))
        elif name not in seen:
            seen.add(name)
            if node.op in ("MatMul", "BatchMatMulV2"):
                matmuls.append(node)
            else:
                pending += list(node.input)
    for loop, index in outputs:
        body = functions[loop.attr["body"].func.name]
        inner = {n.name: n for n in body.node_def}
        pending, seen = [body.ret[body.signature.output_arg[index].name]], set()
        while pending:
            name = pending.pop().lstrip("^").split(":")[0]
            if name not in inner or name in seen:  # a loop variable, or visited
                continue
            seen.add(name)
            if inner[name].op in ("MatMul", "BatchMatMulV2"):
                matmuls.append(inner[name])
            else:
                pending += list(inner[name].input)
    return matmuls


@pytest.mark.parametrize("architecture", ["standard", "gnmt"])
def test_gradients_of_each_layer_run_on_its_device(architecture):
    """The kernel gradients of decoder layer i, summed over time steps in the backward
    loop (or, for layer 0's rows that meet the embeddings, computed for every step at once
    after it), come from matmuls on layer i's device (not where tape.gradient is called)."""
    config = tiny_config(num_decoder_layers=3, attention_architecture=architecture,
                         encoder_type="uni", num_encoder_layers=1)
    placement = devices.model_placement(config, num_gpus=3, device_type="CPU")
    model = build_model(config, VOCAB, VOCAB, placement=placement)
    variables = model.trainable_variables

    @tf.function
    def gradients(batch):
        with tf.GradientTape() as tape:
            loss = model.loss(batch, training=True).loss_sum
        return tape.gradient(loss, variables)

    concrete = gradients.get_concrete_function(random_batch(np.random.default_rng(0)))
    graph_def = concrete.graph.as_graph_def()
    for i, (layer, device) in enumerate(zip(model.decoder.layers, placement["decoder"])):
        for kernel in (v for v in layer.trainable_variables if "kernel" in v.name):
            grad = concrete.outputs[next(j for j, v in enumerate(variables) if v is kernel)]
            matmuls = _matmuls_producing(graph_def, grad.name)
            assert matmuls, (i, kernel.name)
            assert {m.device for m in matmuls} == {device}, (i, kernel.name)


# A covering set of whole placed training steps (every value at least once, the pairs
# that meet in the update: optimizer x precision, architecture x devices); the full
# cross product trains through the CLI in bench/device_matrix.py.
ARCHITECTURES = {
    "uni": dict(encoder_type="uni"),
    "bi": dict(encoder_type="bi"),
    "gnmt": dict(encoder_type="gnmt", num_encoder_layers=3, num_decoder_layers=3,
                 attention_architecture="gnmt", residual=True),
    "residual": dict(encoder_type="uni", num_encoder_layers=3, num_decoder_layers=3,
                     residual=True),
}
OPTIMIZERS = {"fused_adam": lambda: trainer.make_optimizer(
                  config_lib.TrainConfig(num_train_steps=1, optimizer="adam")),
              "keras_adam": lambda: tf.keras.optimizers.Adam(0.001),
              "sgd": lambda: trainer.make_optimizer(
                  config_lib.TrainConfig(num_train_steps=1, optimizer="sgd"))}
STEP_CELLS = [("fused_adam", "fp32", "bi", 2), ("fused_adam", "bf16", "gnmt", 3),
              ("fused_adam", "fp16", "residual", 2), ("keras_adam", "fp32", "gnmt", 2),
              ("keras_adam", "bf16", "uni", 3), ("keras_adam", "fp16", "bi", 3),
              ("sgd", "fp32", "uni", 2), ("sgd", "bf16", "residual", 3),
              ("sgd", "fp16", "gnmt", 3)]
# Every optimizer, precision, architecture and device count once; the rest are slow.
FAST_STEP_CELLS = {("fused_adam", "fp32", "bi", 2), ("fused_adam", "fp16", "residual", 2),
                   ("keras_adam", "bf16", "uni", 3), ("sgd", "fp16", "gnmt", 3)}


@pytest.mark.parametrize("optimizer,precision_name,architecture,num_devices", [
    cell if cell in FAST_STEP_CELLS else pytest.param(*cell, marks=pytest.mark.slow)
    for cell in STEP_CELLS])
def test_a_whole_placed_train_step_updates_like_the_unplaced_one(
        optimizer, precision_name, architecture, num_devices):
    """The trainer's step (forward, backward, clipping, the update inside its cond) on
    placed layers: it runs, updates the weights as the unplaced step does, and each
    optimizer slot lives on its variable's device."""
    config = tiny_config(**ARCHITECTURES[architecture])
    train = config_lib.TrainConfig(num_train_steps=1, precision=precision_name,
                                   jit_compile=False, max_gradient_norm=1.0)
    placement = devices.model_placement(config, num_devices, device_type="CPU")
    placed = build_model(config, VOCAB, VOCAB, placement=placement)
    plain = build_model(config, VOCAB, VOCAB)
    for target, source in zip(placed.variables, plain.variables):
        target.assign(source)
    initial = [v.numpy() for v in plain.trainable_variables]
    batch = random_batch(np.random.default_rng(4))
    results, optimizers = [], []
    for model in (placed, plain):
        optimizers.append(OPTIMIZERS[optimizer]())
        loss_scale = precision.DynamicLossScale() if precision_name == "fp16" else None
        step = trainer.make_train_step(model, optimizers[-1], train, loss_scale)
        out, norm, applied = step(batch)
        assert bool(applied)
        results.append((out.loss_sum, norm, [v.numpy() for v in model.trainable_variables]))
    assert len({v.device for v in placed.trainable_variables}) == num_devices
    for variable, slots in _slots_by_variable(optimizers[0]):
        assert all(slot.device == variable.device for slot in slots), variable.name
    (loss_a, norm_a, vars_a), (loss_b, norm_b, vars_b) = results
    # Placed gradients meet in another order, which fp16 and bf16 round differently; a
    # near-zero gradient then changes Adam's first step (about lr * sign(g)) a little.
    # A tenth of lr still fails a missing, doubled or sign-flipped update (lr or more).
    low = precision_name != "fp32"
    np.testing.assert_allclose(loss_a, loss_b, rtol=1e-3 if low else 1e-5)
    np.testing.assert_allclose(norm_a, norm_b, rtol=1e-3 if low else 1e-5)
    atol = 0.1 * optimizers[0].learning_rate.numpy() if low else 1e-6
    for a, b in zip(vars_a, vars_b):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=atol)
    assert any(not np.array_equal(a, before) for a, before in zip(vars_a, initial))


def _slots_by_variable(optimizer):
    """(variable, [its slot variables]) for each variable a Keras optimizer updates."""
    per_variable = [getattr(optimizer, name, None) for name in ("_momentums", "_velocities")]
    per_variable = [[slot.value for slot in slots] for slots in per_variable if slots]
    return [(v, [slots[i] for slots in per_variable])
            for i, v in enumerate(optimizer._trainable_variables)]


@pytest.mark.parametrize("architecture", ["bi", "residual"])
def test_placed_and_unplaced_checkpoints_are_interchangeable(architecture, tmp_path):
    """A placed model's checkpoint loads into the unplaced model (to translate with) and
    into another placement (to resume on other devices), and back."""
    config = tiny_config(**ARCHITECTURES[architecture])
    models = [build_model(config, VOCAB, VOCAB, placement=devices.model_placement(
        config, n, device_type="CPU")) for n in (2, 0, 3)]
    generator = tf.random.Generator.from_seed(5)
    for v in models[0].trainable_variables:
        v.assign(generator.uniform(v.shape, -0.5, 0.5))
    path = str(tmp_path / "ckpt")
    for source, target in zip(models, models[1:]):
        saved = tf.train.Checkpoint(model=source).write(path)
        tf.train.Checkpoint(model=target).read(saved).assert_existing_objects_matched()
        for a, b in zip(source.trainable_variables, target.trainable_variables):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
