//! The one linear layer every projection of the model goes through, so that a
//! study can rotate its input, fake-quantize its weight and activations, and see
//! what goes in and out.

use std::sync::Arc;

use anyhow::Result;
use candle_core::Tensor;

/// A function of a tensor: a rotation, a fake quantizer, a scaling.
pub trait TensorMap: Send + Sync {
    /// Applies the map.
    fn apply(&self, x: &Tensor) -> Result<Tensor>;
    /// A short description for manifests and errors.
    fn describe(&self) -> String;
}

/// Sees the activations of a model without changing them.
pub trait Observer: Send + Sync {
    /// Called with a linear layer's name, its input (after any input transform
    /// and activation quantizer, i.e. what is multiplied) and its output.
    fn linear(&self, _name: &str, _input: &Tensor, _output: &Tensor) -> Result<()> {
        Ok(())
    }
    /// Called with the residual stream after block `layer`.
    fn residual(&self, _layer: usize, _x: &Tensor) -> Result<()> {
        Ok(())
    }
}

/// What a study configures on one linear layer. The default is nothing: the
/// layer then computes exactly `x W^T`.
#[derive(Clone, Default)]
pub struct LinearConfig {
    /// Applied to the input first (e.g. an online Hadamard rotation).
    pub input_transform: Option<Arc<dyn TensorMap>>,
    /// Applied to the (transformed) input before the product (fake quantization).
    pub activation_quantizer: Option<Arc<dyn TensorMap>>,
    /// Applied once to the weight when configured (fake quantization, rotation
    /// folding); the result replaces the weight used in products.
    pub weight_transform: Option<Arc<dyn TensorMap>>,
}

/// A linear layer `y = x W^T` with the configurable stages of [`LinearConfig`].
#[derive(Clone)]
pub struct Linear {
    /// The layer's name, as in the checkpoint without `.weight`.
    pub name: String,
    weight: Tensor,
    bias: Option<Tensor>,
    effective: Tensor,
    config: LinearConfig,
}

impl Linear {
    /// A layer with weight `[out, in]` and nothing configured.
    pub fn new(name: impl Into<String>, weight: Tensor) -> Self {
        Linear {
            name: name.into(),
            effective: weight.clone(),
            weight,
            bias: None,
            config: LinearConfig::default(),
        }
    }

    /// The layer with an output bias `[out]` (Qwen2's attention projections).
    pub fn with_bias(mut self, bias: Tensor) -> Self {
        self.bias = Some(bias);
        self
    }

    /// The output bias, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Replaces the output bias.
    pub fn set_bias(&mut self, bias: Option<Tensor>) {
        self.bias = bias;
    }

    /// The original weight `[out, in]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The weight used in products (after any weight transform).
    pub fn effective_weight(&self) -> &Tensor {
        &self.effective
    }

    /// Replaces the original weight (e.g. after folding a norm into it) and
    /// reapplies the configured weight transform.
    pub fn set_weight(&mut self, weight: Tensor) -> Result<()> {
        self.weight = weight;
        self.effective = match &self.config.weight_transform {
            Some(t) => t.apply(&self.weight)?,
            None => self.weight.clone(),
        };
        Ok(())
    }

    /// Installs a configuration; the weight transform runs now, once.
    pub fn configure(&mut self, config: LinearConfig) -> Result<()> {
        self.config = config;
        let weight = self.weight.clone();
        self.set_weight(weight)
    }

    /// The current configuration.
    pub fn config(&self) -> &LinearConfig {
        &self.config
    }

    /// `x W^T` for `x` of shape `[..., in]`, through the configured stages.
    pub fn forward(&self, x: &Tensor, observer: Option<&dyn Observer>) -> Result<Tensor> {
        let mut input = match &self.config.input_transform {
            Some(t) => t.apply(x)?,
            None => x.clone(),
        };
        if let Some(q) = &self.config.activation_quantizer {
            input = q.apply(&input)?;
        }
        let mut output = input.broadcast_matmul(&self.effective.t()?)?;
        if let Some(bias) = &self.bias {
            output = output.broadcast_add(bias)?;
        }
        if let Some(observer) = observer {
            observer.linear(&self.name, &input, &output)?;
        }
        Ok(output)
    }
}
