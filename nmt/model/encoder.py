"""Encoder: embeddings + stacked uni/bidirectional recurrent layers.

Layout (ModelConfig.encoder_type):
- "uni": every layer unidirectional with num_units.
- "bi": every layer bidirectional, num_units // 2 per direction, the two
  outputs concatenated back to num_units.
- "gnmt": the first layer bidirectional as above, the rest unidirectional
  (Wu et al. 2016 §3).
Residual connections, when on, join layer 2 and up (their input and output
sizes are both num_units). Each layer runs over the whole sequence before the
next starts, so every layer's input projection is one matmul.
"""
import collections

import tensorflow as tf

from nmt.model import cells as cells_lib
from nmt.model import devices as devices_lib
from nmt.model import rnn

EncoderOutput = collections.namedtuple("EncoderOutput",
                                       ["annotations", "thought_vector", "lengths"])
# annotations [batch, src_time, num_units], zeros past each length;
# thought_vector: tuple with one final state per layer (LSTMStateTuple or tensor, num_units wide);
# lengths [batch] int32.


def make_cell(unit_type, num_units, input_size, dropout, variational, forget_bias,
              residual=False, device=None, seed=None, layer_norm=False):
    """One recurrent layer's cell with its wrappers: Dropout(inputs) -> Residual -> Device.
    The cell's variables are created on `device` (None: unplaced)."""
    with devices_lib.scope(device):  # the cell is built here, eagerly from input_size
        if unit_type == "lstm":
            cell = cells_lib.LSTMCell(num_units, forget_bias=forget_bias, layer_norm=layer_norm,
                                      input_size=input_size)
        else:
            cell = cells_lib.GRUCell(num_units, input_size=input_size)
    if dropout > 0.0:
        cell = cells_lib.DropoutWrapper(cell, input_keep_prob=1.0 - dropout,
                                        variational_recurrent=variational, seed=seed)
    if residual:
        cell = cells_lib.ResidualWrapper(cell)
    if device is not None:
        cell = cells_lib.DeviceWrapper(cell, device)
    return cell


def concat_states(fw, bw):
    """Joins a forward and a backward final state along the units axis."""
    if isinstance(fw, cells_lib.LSTMStateTuple):
        return cells_lib.LSTMStateTuple(tf.concat([fw.c, bw.c], -1), tf.concat([fw.h, bw.h], -1))
    return tf.concat([fw, bw], -1)


class Encoder(tf.Module):
    """ids `[batch, src_time]`, lengths `[batch]` -> EncoderOutput."""

    def __init__(self, config, embedding, devices=None, backward_devices=None, seed=0,
                 name="encoder"):
        """devices[i]: layer i's device (its forward cell's, if bidirectional);
        backward_devices[i]: the backward cell's (default: devices[i]). See nmt.model.devices."""
        super().__init__(name=name)
        self.embedding = embedding
        num_layers = config.num_encoder_layers
        devices = devices or [None] * num_layers
        backward_devices = backward_devices or devices
        self.bidirectional = [
            config.encoder_type == "bi" or (config.encoder_type == "gnmt" and i == 0)
            for i in range(num_layers)]
        self.layers = []
        with self.name_scope:
            for i in range(num_layers):
                input_size = embedding.size if i == 0 else config.num_units
                residual = config.residual and i >= 1
                kwargs = dict(unit_type=config.unit_type, input_size=input_size,
                              dropout=config.dropout, variational=config.variational_dropout,
                              forget_bias=config.forget_bias, layer_norm=config.layer_norm,
                              device=devices[i])
                seeds = (seed + 2 * i, seed + 2 * i + 1)  # dropout RNGs, saved in checkpoints
                if self.bidirectional[i]:
                    half = config.num_units // 2
                    # Residual on a bi layer wraps the pair: added after concatenation.
                    backward = dict(kwargs, device=backward_devices[i])
                    self.layers.append((make_cell(num_units=half, seed=seeds[0], **kwargs),
                                        make_cell(num_units=half, seed=seeds[1], **backward),
                                        residual))
                else:
                    self.layers.append((make_cell(num_units=config.num_units, residual=residual,
                                                  seed=seeds[0], **kwargs), None, False))

    def __call__(self, ids, lengths, training=False, dtype=tf.float32):
        """dtype: the compute dtype of the layers (nmt.model.precision)."""
        inputs = self.embedding(ids, dtype)  # [batch, src_time, embedding_size]
        states = []
        for cell_fw, cell_bw, residual in self.layers:
            if cell_bw is None:
                inputs, state = rnn.dynamic_rnn(cell_fw, inputs, sequence_length=lengths,
                                                dtype=inputs.dtype, training=training)
            else:
                (out_fw, out_bw), (st_fw, st_bw) = rnn.bidirectional_dynamic_rnn(
                    cell_fw, cell_bw, inputs, sequence_length=lengths, dtype=inputs.dtype,
                    training=training)
                outputs = tf.concat([out_fw, out_bw], -1)  # [batch, src_time, num_units]
                inputs = outputs + inputs if residual else outputs
                state = concat_states(st_fw, st_bw)
            states.append(state)
        return EncoderOutput(inputs, tuple(states), lengths)
