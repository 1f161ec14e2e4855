#version 430 core
// Gaussian splats as instanced screen-space quads (one quad per splat, 4-vertex strip).
//
// Maths follow engine/lift/raster.py (gsplat 1.5 "classic"): EWA projection in OpenCV
// camera axes (x right, y down, z forward) with the Jacobian clamp at the image bounds
// + 30 % of tan(half fov), cov2d = J W cov3d W^T J^T + 0.3 I, opacity-aware extent
// min(3.33, sqrt(2 ln(255 o))), colour = max(0, SH(dir) + 0.5). Pixel coordinates are
// relative to the viewport, row 0 at the top, pixel centres at +0.5.
//
// Splat storage (std430, uStride uint per splat): x y z as float32 bits, then float16 pairs
// (opacity, log-scale x) (log-scale y, log-scale z) (qw, qx) (qy, qz), one spare word, then
// the [K, 3] SH coefficients as float16 pairs (ceil(3K/2) words). Each set is split into 4
// SSBOs ("chunks") of uChunk splats, under the driver's block limit (9 blocks in all: the
// vertex stage may have 16). A frame is static[0, uStaticCount) followed by
// dynamic[uDynOffset, ...); gl_InstanceID indexes the sorted order buffer, whose entries
// index that frame-local list.

layout(std430, binding = 0) readonly buffer S0 { uint s0[]; };
layout(std430, binding = 1) readonly buffer S1 { uint s1[]; };
layout(std430, binding = 2) readonly buffer S2 { uint s2[]; };
layout(std430, binding = 3) readonly buffer S3 { uint s3[]; };
layout(std430, binding = 4) readonly buffer D0 { uint d0[]; };
layout(std430, binding = 5) readonly buffer D1 { uint d1[]; };
layout(std430, binding = 6) readonly buffer D2 { uint d2[]; };
layout(std430, binding = 7) readonly buffer D3 { uint d3[]; };
layout(std430, binding = 8) readonly buffer Order { uint order[]; };

uniform mat4 uView;        // world -> OpenGL camera
uniform vec2 uFocal;       // fx, fy in pixels
uniform vec2 uCentre;      // cx, cy in pixels (OpenCV: from the viewport's top-left)
uniform vec2 uSize;        // viewport width, height in pixels
uniform vec2 uNearFar;     // cull planes on camera depth
uniform vec3 uCamPos;      // camera centre in world coordinates
uniform uint uStaticCount;
uniform uint uDynOffset;
uniform int uShDegree;     // evaluated degree, 0..3
uniform int uShK;          // stored coefficients per splat, (degree+1)^2 of the data
uniform uint uStride;      // words per splat: 8 + ceil(3 K / 2)
uniform uint uChunk;       // splats per chunk
uniform float uLodScale;   // covariance multiplier (a subset drawn for the whole)

flat out vec2 vMean;       // projected centre, viewport pixels (row 0 at top)
flat out vec3 vConic;      // inverse cov2d: xx, xy, yy
flat out vec4 vColour;     // rgb, opacity

const float ALPHA_MIN = 1.0 / 255.0;
const float EPS2D = 0.3;
const float EXTEND_MAX = 3.33;
const float CLIP_FOV = 0.3;

const float C0 = 0.28209479177387814;
const float C1 = 0.4886025119029199;
const float C2[5] = float[5](1.0925484305920792, -1.0925484305920792, 0.31539156525252005,
                             -1.0925484305920792, 0.5462742152960396);
const float C3[7] = float[7](-0.5900435899266435, 2.890611442640554, -0.4570457994644658,
                             0.3731763325901154, -0.4570457994644658, 1.445305721320277,
                             -0.5900435899266435);

uint splat_word(bool dyn, uint idx, uint w) {
    uint c = idx / uChunk, o = (idx - c * uChunk) * uStride + w;
    if (dyn) {
        if (c == 0u) return d0[o];
        if (c == 1u) return d1[o];
        if (c == 2u) return d2[o];
        return d3[o];
    }
    if (c == 0u) return s0[o];
    if (c == 1u) return s1[o];
    if (c == 2u) return s2[o];
    return s3[o];
}

uint sh_word(bool dyn, uint idx, uint w) { return splat_word(dyn, idx, 8u + w); }

float sh_value(bool dyn, uint idx, uint i) {
    vec2 pair = unpackHalf2x16(sh_word(dyn, idx, i >> 1u));
    return (i & 1u) == 0u ? pair.x : pair.y;
}

vec3 coef(bool dyn, uint idx, int k) {
    uint i = uint(3 * k);
    return vec3(sh_value(dyn, idx, i), sh_value(dyn, idx, i + 1u), sh_value(dyn, idx, i + 2u));
}

vec3 eval_sh(bool dyn, uint base, vec3 dir) {
    vec3 c = C0 * coef(dyn, base, 0);
    if (uShDegree < 1) return c;
    float x = dir.x, y = dir.y, z = dir.z;
    c += -C1 * y * coef(dyn, base, 1) + C1 * z * coef(dyn, base, 2) - C1 * x * coef(dyn, base, 3);
    if (uShDegree < 2) return c;
    float xx = x * x, yy = y * y, zz = z * z, xy = x * y, yz = y * z, xz = x * z;
    c += C2[0] * xy * coef(dyn, base, 4) + C2[1] * yz * coef(dyn, base, 5)
       + C2[2] * (2.0 * zz - xx - yy) * coef(dyn, base, 6) + C2[3] * xz * coef(dyn, base, 7)
       + C2[4] * (xx - yy) * coef(dyn, base, 8);
    if (uShDegree < 3) return c;
    c += C3[0] * y * (3.0 * xx - yy) * coef(dyn, base, 9)
       + C3[1] * xy * z * coef(dyn, base, 10)
       + C3[2] * y * (4.0 * zz - xx - yy) * coef(dyn, base, 11)
       + C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy) * coef(dyn, base, 12)
       + C3[4] * x * (4.0 * zz - xx - yy) * coef(dyn, base, 13)
       + C3[5] * z * (xx - yy) * coef(dyn, base, 14)
       + C3[6] * x * (xx - 3.0 * yy) * coef(dyn, base, 15);
    return c;
}

void cull() {
    gl_Position = vec4(0.0, 0.0, 2.0, 1.0);  // outside the clip volume: the quad vanishes
    vMean = vec2(0.0);
    vConic = vec3(0.0);
    vColour = vec4(0.0);
}

mat3 quat_to_rotmat(vec4 q) {  // wxyz, unit; columns of the rotation (GLSL column-major)
    float w = q.x, x = q.y, y = q.z, z = q.w;
    return mat3(1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y + w * z), 2.0 * (x * z - w * y),
                2.0 * (x * y - w * z), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z + w * x),
                2.0 * (x * z + w * y), 2.0 * (y * z - w * x), 1.0 - 2.0 * (x * x + y * y));
}

void main() {
    uint local = order[gl_InstanceID];
    bool dyn = local >= uStaticCount;
    uint idx = dyn ? (uDynOffset + local - uStaticCount) : local;
    vec3 pos = uintBitsToFloat(uvec3(splat_word(dyn, idx, 0u), splat_word(dyn, idx, 1u),
                                     splat_word(dyn, idx, 2u)));
    vec2 os = unpackHalf2x16(splat_word(dyn, idx, 3u));
    vec2 ss = unpackHalf2x16(splat_word(dyn, idx, 4u));
    vec2 qa = unpackHalf2x16(splat_word(dyn, idx, 5u));
    vec2 qb = unpackHalf2x16(splat_word(dyn, idx, 6u));
    float opacity = os.x;
    vec4 cam = uView * vec4(pos, 1.0);
    vec3 t = vec3(cam.x, -cam.y, -cam.z);  // OpenCV camera axes
    if (t.z < uNearFar.x || t.z > uNearFar.y || opacity < ALPHA_MIN) { cull(); return; }

    // World covariance R S S R^T (times the level-of-detail factor), then camera space,
    // W = diag(1, -1, -1) * R_gl.
    mat3 R = quat_to_rotmat(normalize(vec4(qa, qb)));
    vec3 sc = exp(vec3(os.y, ss.x, ss.y));
    mat3 RS = mat3(R[0] * sc.x, R[1] * sc.y, R[2] * sc.z);
    mat3 S = uLodScale * (RS * transpose(RS));
    mat3 W = mat3(uView);
    W[0].yz = -W[0].yz; W[1].yz = -W[1].yz; W[2].yz = -W[2].yz;
    mat3 cov = W * S * transpose(W);

    // EWA Jacobian with gsplat's clamp.
    vec2 f = uFocal, c = uCentre;
    vec2 tan_fov = 0.5 * uSize / f;
    vec2 lim_pos = (uSize - c) / f + CLIP_FOV * tan_fov;
    vec2 lim_neg = c / f + CLIP_FOV * tan_fov;
    float rz = 1.0 / t.z;
    vec2 txy = t.z * clamp(t.xy * rz, -lim_neg, lim_pos);
    // J rows: (fx rz, 0, -fx tx rz^2), (0, fy rz, -fy ty rz^2); GLSL is column-major.
    mat3x2 J = mat3x2(f.x * rz, 0.0,
                      0.0, f.y * rz,
                      -f.x * txy.x * rz * rz, -f.y * txy.y * rz * rz);
    mat2 cov2 = J * cov * transpose(J);
    float a = cov2[0][0] + EPS2D, b = cov2[0][1], d = cov2[1][1] + EPS2D;
    float det = a * d - b * b;
    if (!(det > 0.0)) { cull(); return; }

    vec2 mean = f * t.xy * rz + c;
    float extend = min(EXTEND_MAX, sqrt(2.0 * log(opacity / ALPHA_MIN)));
    vec2 radius = ceil(extend * sqrt(vec2(a, d)));
    if (!(radius.x > 0.0 && radius.y > 0.0)
        || mean.x + radius.x <= 0.0 || mean.x - radius.x >= uSize.x
        || mean.y + radius.y <= 0.0 || mean.y - radius.y >= uSize.y) { cull(); return; }

    // Quad along the eigenvectors of cov2d, covering the alpha >= 1/255 ellipse + 1 px.
    float mid = 0.5 * (a + d);
    float r = sqrt(max(0.25 * (a - d) * (a - d) + b * b, 0.0));
    float l1 = mid + r, l2 = max(mid - r, 0.0);
    vec2 u1 = vec2(b, l1 - a), u2 = vec2(l1 - d, b);
    vec2 v1 = dot(u1, u1) > dot(u2, u2) ? u1 : u2;
    v1 = dot(v1, v1) > 0.0 ? normalize(v1) : vec2(1.0, 0.0);
    vec2 v2 = vec2(-v1.y, v1.x);
    vec2 corner = vec2(float(gl_VertexID & 1), float(gl_VertexID >> 1)) * 2.0 - 1.0;
    vec2 pix = mean + corner.x * (extend * sqrt(l1) + 1.0) * v1
                    + corner.y * (extend * sqrt(l2) + 1.0) * v2;
    gl_Position = vec4(pix.x / uSize.x * 2.0 - 1.0, 1.0 - pix.y / uSize.y * 2.0, 0.0, 1.0);

    vec3 rgb = max(eval_sh(dyn, idx, normalize(pos - uCamPos)) + 0.5, 0.0);
    vMean = mean;
    vConic = vec3(d, -b, a) / det;
    vColour = vec4(rgb, opacity);
}
